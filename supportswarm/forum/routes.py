from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from supportswarm import validation
from supportswarm.accounts import permissions
from supportswarm.forum import services
from supportswarm.httpkit import body_data, login_required, ok, path_id, render, user_of
from supportswarm.matching import services as matching
from supportswarm.swarm import services as swarm_services


def _settings_reputation(request: Request) -> int:
    return int(request.app.state.settings.trusted_reputation)


def _back(question_id: int, anchor: str = "") -> Response:
    return RedirectResponse(f"/questions/{question_id}{anchor}", status_code=303)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


# --- API -----------------------------------------------------------------------------------------


async def api_list_questions(request: Request) -> Response:
    q = request.query_params
    page = validation.integer(q.get("page"), "page", default=1, lo=1, hi=100_000)
    items, total = await services.list_questions(status=q.get("status") or None, tag=q.get("tag") or None, page=page)
    return ok({"items": [services.question_summary(i) for i in items], "page": page, "total": total,
               "per_page": services.PAGE_SIZE})


async def api_get_question(request: Request) -> Response:
    return ok(await services.question_detail(path_id(request), reveal=permissions.is_staff(user_of(request))))


async def post_answer(request: Request) -> Response:
    user = login_required(request)
    data = await body_data(request)
    wiki = data.get("wiki") in (True, "on", "1", "true")
    answer = await services.post_answer(user, path_id(request), data.get("body"), is_wiki=wiki)
    if _is_api(request):
        return ok(services.answer_dict(answer), 201)
    return _back(answer.question_id, f"#answer-{answer.id}")


async def accept_answer(request: Request) -> Response:
    user = login_required(request)
    if not _is_api(request):
        await body_data(request)
    question = await services.accept_answer(user, path_id(request))
    if _is_api(request):
        return ok(services.question_summary(question))
    return _back(question.id)


def _vote_value(raw: object) -> object:
    return {"up": 1, "down": -1, "none": 0, "1": 1, "-1": -1, "0": 0}.get(raw, raw) if isinstance(raw, str) else raw


async def vote_question(request: Request) -> Response:
    user = login_required(request)
    data = await body_data(request)
    qid = path_id(request)
    score = await services.vote(user, value=_vote_value(data.get("value")), question_id=qid)
    return ok({"score": score}) if _is_api(request) else _back(qid)


async def vote_answer(request: Request) -> Response:
    user = login_required(request)
    data = await body_data(request)
    score = await services.vote(user, value=_vote_value(data.get("value")), answer_id=path_id(request))
    if _is_api(request):
        return ok({"score": score})
    answer = await services.get_answer(path_id(request))
    return _back(answer.question_id, f"#answer-{answer.id}")


async def comment_question(request: Request) -> Response:
    user = login_required(request)
    data = await body_data(request)
    comment = await services.post_comment(user, data.get("body"), question_id=path_id(request))
    return ok({"id": comment.id}, 201) if _is_api(request) else _back(path_id(request))


async def comment_answer(request: Request) -> Response:
    user = login_required(request)
    data = await body_data(request)
    comment = await services.post_comment(user, data.get("body"), answer_id=path_id(request))
    if _is_api(request):
        return ok({"id": comment.id}, 201)
    answer = await services.get_answer(path_id(request))
    return _back(answer.question_id, f"#answer-{answer.id}")


async def api_edit_question(request: Request) -> Response:
    user = login_required(request)
    data = await body_data(request)
    question = await services.edit_question(
        user, path_id(request), title=data.get("title"), body=data.get("body"),
        tags=validation.tags(data.get("tags")), comment=str(data.get("comment") or ""), jobs=request.state.jobs,
    )
    return ok(services.question_summary(question)) if _is_api(request) else _back(question.id)


async def api_edit_answer(request: Request) -> Response:
    user = login_required(request)
    data = await body_data(request)
    answer = await services.edit_answer(user, path_id(request), body=data.get("body"),
                                        comment=str(data.get("comment") or ""),
                                        trusted_reputation=_settings_reputation(request))
    if _is_api(request):
        return ok(services.answer_dict(answer))
    return _back(answer.question_id, f"#answer-{answer.id}")


async def api_question_revisions(request: Request) -> Response:
    reveal = permissions.is_staff(user_of(request))
    return ok({"revisions": await services.revision_history(question_id=path_id(request), reveal=reveal)})


async def api_answer_revisions(request: Request) -> Response:
    reveal = permissions.is_staff(user_of(request))
    return ok({"revisions": await services.revision_history(answer_id=path_id(request), reveal=reveal)})


async def mark_duplicate(request: Request) -> Response:
    user = login_required(request)
    data = await body_data(request)
    original = validation.integer(data.get("duplicate_of"), "duplicate_of", lo=1, hi=2**31 - 1)
    question = await services.mark_duplicate(user, path_id(request), original)
    return ok(services.question_summary(question)) if _is_api(request) else _back(question.id)


# --- pages ---------------------------------------------------------------------------------------


async def home_page(request: Request) -> Response:
    q = request.query_params
    page = validation.integer(q.get("page"), "page", default=1, lo=1, hi=100_000)
    status = q.get("status") or None
    tag = q.get("tag") or None
    items, total = await services.list_questions(status=status, tag=tag, page=page)
    pages = max(1, -(-total // services.PAGE_SIZE))
    return render(request, "forum/list.html", {"items": items, "total": total, "page": page, "pages": pages,
                                                "status": status, "tag": tag, "filters": list(services.FILTERS)})


async def question_page(request: Request) -> Response:
    user = user_of(request)
    detail = await services.question_detail(path_id(request), reveal=permissions.is_staff(user))
    votes = await services.user_vote_map(user, detail["id"], [a["id"] for a in detail["answers"]])
    asker = await services.get_question(detail["id"])
    return render(request, "forum/question.html", {
        "q": detail, "votes": votes,
        "can_accept": user is not None and permissions.can_accept(user, asker.author_id),
        "can_edit": user is not None and permissions.can_edit(user, asker.author_id),
        "is_staff": permissions.is_staff(user),
        "possible_duplicates": await matching.possible_duplicates(detail["id"], embedder=request.state.embedder)
        if permissions.can_moderate(user) else [],
        # The swarm box (issue 8): a link to the live room, or the button for those who may open one.
        "swarm": await swarm_services.swarm_for_question(detail["id"]),
        "can_swarm": user is not None and permissions.can_join_swarm(
            user, asker.author_id, expert_reputation=request.app.state.settings.expert_reputation),
    })


async def edit_question_page(request: Request) -> Response:
    user = login_required(request)
    question = await services.get_question(path_id(request))
    permissions.ensure(permissions.can_edit(user, question.author_id),
                       "only the author or staff can edit this question")
    return render(request, "forum/edit.html", {"question": question, "tags": " ".join(t.name for t in question.tags)})


async def edit_answer_page(request: Request) -> Response:
    user = login_required(request)
    answer = await services.get_answer(path_id(request))
    permissions.ensure(permissions.can_edit(user, answer.author_id, is_wiki=answer.is_wiki,
                                            trusted_reputation=_settings_reputation(request)),
                       "only the author, staff, or trusted users on a community-wiki answer can edit this answer")
    return render(request, "forum/edit.html", {"answer": answer})


async def revisions_page(request: Request) -> Response:
    kind = request.path_params["kind"]
    key = {"answer_id": path_id(request)} if kind == "answers" else {"question_id": path_id(request)}
    revisions = await services.revision_history(**key, reveal=permissions.is_staff(user_of(request)))
    return render(request, "forum/revisions.html", {"revisions": revisions})


routes = [
    Route("/api/v1/questions", api_list_questions, methods=["GET"], name="api_questions"),
    Route("/api/v1/questions/{id:int}", api_get_question, methods=["GET"], name="api_question"),
    Route("/api/v1/questions/{id:int}", api_edit_question, methods=["PATCH"], name="api_edit_question"),
    Route("/api/v1/questions/{id:int}/answers", post_answer, methods=["POST"], name="api_post_answer"),
    Route("/api/v1/questions/{id:int}/vote", vote_question, methods=["POST"], name="api_vote_question"),
    Route("/api/v1/questions/{id:int}/comments", comment_question, methods=["POST"], name="api_comment_question"),
    Route("/api/v1/questions/{id:int}/revisions", api_question_revisions, methods=["GET"], name="api_q_revisions"),
    Route("/api/v1/questions/{id:int}/duplicate", mark_duplicate, methods=["POST"], name="api_duplicate"),
    Route("/api/v1/answers/{id:int}", api_edit_answer, methods=["PATCH"], name="api_edit_answer"),
    Route("/api/v1/answers/{id:int}/accept", accept_answer, methods=["POST"], name="api_accept"),
    Route("/api/v1/answers/{id:int}/vote", vote_answer, methods=["POST"], name="api_vote_answer"),
    Route("/api/v1/answers/{id:int}/comments", comment_answer, methods=["POST"], name="api_comment_answer"),
    Route("/api/v1/answers/{id:int}/revisions", api_answer_revisions, methods=["GET"], name="api_a_revisions"),
    Route("/", home_page, methods=["GET"], name="home"),
    Route("/questions/{id:int}", question_page, methods=["GET"], name="question"),
    Route("/questions/{id:int}/answers", post_answer, methods=["POST"], name="post_answer"),
    Route("/questions/{id:int}/vote", vote_question, methods=["POST"], name="vote_question"),
    Route("/questions/{id:int}/comments", comment_question, methods=["POST"], name="comment_question"),
    Route("/questions/{id:int}/edit", edit_question_page, methods=["GET"], name="edit_question"),
    Route("/questions/{id:int}/edit", api_edit_question, methods=["POST"], name="save_question"),
    Route("/questions/{id:int}/duplicate", mark_duplicate, methods=["POST"], name="duplicate"),
    Route("/answers/{id:int}/accept", accept_answer, methods=["POST"], name="accept"),
    Route("/answers/{id:int}/vote", vote_answer, methods=["POST"], name="vote_answer"),
    Route("/answers/{id:int}/comments", comment_answer, methods=["POST"], name="comment_answer"),
    Route("/answers/{id:int}/edit", edit_answer_page, methods=["GET"], name="edit_answer"),
    Route("/answers/{id:int}/edit", api_edit_answer, methods=["POST"], name="save_answer"),
    Route("/{kind:str}/{id:int}/revisions", revisions_page, methods=["GET"], name="revisions"),
]
