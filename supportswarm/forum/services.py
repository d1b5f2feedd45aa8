"""Questions, answers, comments, votes, acceptance, edits with history, duplicates."""

from __future__ import annotations

import difflib
from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from supportswarm.accounts import permissions
from supportswarm.accounts.models import User
from supportswarm.accounts.services import add_reputation
from supportswarm.errors import Conflict, Forbidden, InvalidInput, NotFound
from supportswarm.forum.models import Answer, Comment, Question, QuestionStatus, Revision, Tag, Vote
from supportswarm.jobs import JobName, JobQueue
from supportswarm.metrics.events import EventKind, record_event
from supportswarm.moderation.visibility import shown
from supportswarm.validation import TAG_RE

TITLE_MAX = 200
TITLE_MIN = 10
BODY_MAX = 30_000
ANSWER_MIN = 5
COMMENT_MAX = 600
PAGE_SIZE = 20

REP_QUESTION_UP = 5
REP_ANSWER_UP = 10
REP_DOWN = -2
REP_ACCEPTED = 15
REP_ACCEPTER = 2


def now() -> datetime:
    return datetime.now(UTC)


def check_title(title: object) -> str:
    if not isinstance(title, str):
        raise InvalidInput("title is required", field="title")
    title = " ".join(title.split())
    if len(title) < TITLE_MIN:
        raise InvalidInput(f"title must be at least {TITLE_MIN} characters", field="title")
    if len(title) > TITLE_MAX:
        raise InvalidInput(f"title must be at most {TITLE_MAX} characters", field="title")
    return title


def check_body(body: object, *, field: str = "body", min_len: int = 0) -> str:
    if body is None:
        body = ""
    if not isinstance(body, str):
        raise InvalidInput(f"{field} must be a string", field=field)
    if "\x00" in body:
        raise InvalidInput(f"{field} must not contain NUL characters", field=field)
    try:
        body.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in JSON): PostgreSQL cannot store it
        raise InvalidInput(f"{field} is not valid Unicode text", field=field) from None
    if len(body.strip()) < min_len:
        raise InvalidInput(f"{field} must be at least {min_len} characters", field=field)
    if len(body) > BODY_MAX:
        raise InvalidInput(f"{field} must be at most {BODY_MAX} characters", field=field)
    return body  # kept as written: leading spaces are Markdown (an indented code block), not noise


async def _set_tags(question: Question, names: list[str]) -> None:
    tags = [(await Tag.get_or_create(name=name))[0] for name in names]
    await question.tags.clear()
    if tags:
        await question.tags.add(*tags)


async def create_question(
    author: User | None,
    title: str,
    body: str,
    tags: list[str],
    *,
    jobs: JobQueue | None,
    external_id: str | None = None,
    created_at: datetime | None = None,
) -> Question:
    """Stores a question with its first revision and logs it; embedding follows as a job."""
    at = created_at or now()
    async with in_transaction():
        question = await Question.create(
            author=author, title=title, body=body, external_id=external_id,
            created_at=at, updated_at=at, last_activity_at=at,
        )
        await _set_tags(question, tags)
        await Revision.create(question=question, editor=author, number=1, title=title, body=body, tags=" ".join(tags))
        await record_event(EventKind.QUESTION_ASKED, actor_id=author.id if author else None,
                           question_id=question.id, at=at, tags=tags)
    if jobs is not None:
        await jobs.enqueue(JobName.EMBED_QUESTION, job_id=f"embed-question:{question.id}:{at.timestamp()}",
                           question_id=question.id)
    return question


async def get_question(question_id: int) -> Question:
    question = await Question.filter(id=question_id).prefetch_related("tags", "author").first()
    if question is None:
        raise NotFound(f"no question with id {question_id}")
    return question


async def get_answer(answer_id: int) -> Answer:
    answer = await Answer.filter(id=answer_id).prefetch_related("question", "author").first()
    if answer is None:
        raise NotFound(f"no answer with id {answer_id}")
    return answer


async def _log_first_response(question: Question, responder: User, at: datetime) -> None:
    """The first answer, comment or swarm message by someone other than the asker. In the caller's
    transaction, under the question's row lock: two first responses at once log one. FOR NO KEY UPDATE,
    because the caller's rows that refer to the question hold a key-share lock on it, which FOR UPDATE
    would wait on (two such callers deadlock)."""
    if responder.id == question.author_id:
        return
    from supportswarm.metrics.models import Event

    await Question.select_for_update(no_key=True).get(id=question.id)
    if await Event.filter(kind=EventKind.FIRST_RESPONSE, question_id=question.id).exists():
        return
    await record_event(EventKind.FIRST_RESPONSE, actor_id=responder.id, question_id=question.id, at=at,
                       role=str(responder.role))


async def record_response(question_id: int, responder: User, at: datetime | None = None) -> None:
    """Log a response made elsewhere (a swarm message) as the question's first response if it is one."""
    async with in_transaction():
        await _log_first_response(await Question.get(id=question_id), responder, at or now())


async def post_answer(
    user: User, question_id: int, body: object, *, is_wiki: bool = False, from_swarm_id: int | None = None,
    created_at: datetime | None = None,
) -> Answer:
    text = check_body(body, min_len=ANSWER_MIN)
    question = await get_question(question_id)
    if question.status == QuestionStatus.DUPLICATE:
        raise Conflict("this question is closed as a duplicate; answer the original instead")
    at = created_at or now()
    async with in_transaction():
        answer = await Answer.create(question=question, author=user, body=text, is_wiki=is_wiki,
                                     from_swarm_id=from_swarm_id, created_at=at, updated_at=at)
        await Revision.create(answer=answer, editor=user, number=1, body=text)
        await Question.filter(id=question.id).update(answer_count=F("answer_count") + 1, last_activity_at=at)
        await record_event(EventKind.ANSWER_POSTED, actor_id=user.id, question_id=question.id, answer_id=answer.id,
                           at=at)
        await _log_first_response(question, user, at)
    return answer


async def post_comment(user: User, body: object, *, question_id: int | None = None,
                       answer_id: int | None = None) -> Comment:
    text = check_body(body, min_len=2)
    if len(text) > COMMENT_MAX:
        raise InvalidInput(f"body must be at most {COMMENT_MAX} characters", field="body")
    if answer_id is not None:
        answer = await get_answer(answer_id)
        question = answer.question
    else:
        question = await get_question(question_id or 0)
    async with in_transaction():
        comment = await Comment.create(question_id=None if answer_id else question.id, answer_id=answer_id,
                                       author=user, body=text)
        await record_event(EventKind.COMMENT_POSTED, actor_id=user.id, question_id=question.id, answer_id=answer_id)
        await _log_first_response(question, user, now())
    return comment


async def vote(user: User, *, value: object, question_id: int | None = None, answer_id: int | None = None) -> int:
    """Up (1), down (-1) or withdraw (0); one vote per user per post, changeable. Returns the new score."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value not in (1, -1, 0):
        raise InvalidInput("value must be 1, -1 or 0", field="value")
    new_value = int(value)
    post: Question | Answer = await get_answer(answer_id) if answer_id else await get_question(question_id or 0)
    author_id = post.author_id
    if author_id == user.id:
        raise Forbidden("you cannot vote on your own post")
    model = Answer if answer_id else Question
    key: dict[str, Any] = {"answer_id": post.id} if answer_id else {"question_id": post.id}
    up_rep = REP_ANSWER_UP if answer_id else REP_QUESTION_UP
    async with in_transaction():
        old = await Vote.filter(user=user, **key).select_for_update().first()
        old_value = old.value if old else 0
        if new_value == old_value:
            return post.score
        if old and new_value == 0:
            await old.delete()
        elif old:
            old.value = new_value
            await old.save(update_fields=["value"])
        else:
            try:
                await Vote.create(user=user, value=new_value, **key)
            except IntegrityError:
                raise Conflict("your vote was being recorded twice; try again") from None
        delta = new_value - old_value
        await model.filter(id=post.id).update(score=F("score") + delta)
        await add_reputation(author_id, _rep(old_value, new_value, up_rep))
        fresh = await model.get(id=post.id)
    return fresh.score


def _rep(old: int, new: int, up: int) -> int:
    def worth(v: int) -> int:
        return up if v == 1 else REP_DOWN if v == -1 else 0

    return worth(new) - worth(old)


async def accept_answer(user: User, answer_id: int) -> Question:
    """The asker (or staff) accepts; the question is resolved. Accepting another answer moves the mark."""
    answer = await get_answer(answer_id)
    question = answer.question
    permissions.ensure(permissions.can_accept(user, question.author_id),
                       "only the asker or staff can accept an answer")
    if question.accepted_answer_id == answer.id:
        return await get_question(question.id)  # a repeated accept; with its tags, as the caller renders them
    async with in_transaction():
        previous = await Answer.filter(question_id=question.id, is_accepted=True).first()
        if previous:
            await Answer.filter(id=previous.id).update(is_accepted=False)
            await add_reputation(previous.author_id, -REP_ACCEPTED)
        await Answer.filter(id=answer.id).update(is_accepted=True)
        if answer.author_id != question.author_id:
            await add_reputation(answer.author_id, REP_ACCEPTED)
            if previous is None:
                await add_reputation(question.author_id, REP_ACCEPTER)
        await Question.filter(id=question.id).update(
            accepted_answer_id=answer.id, status=QuestionStatus.RESOLVED, last_activity_at=now()
        )
        await record_event(EventKind.ANSWER_ACCEPTED, actor_id=user.id, question_id=question.id, answer_id=answer.id)
        if question.status != QuestionStatus.RESOLVED:
            await record_event(EventKind.QUESTION_RESOLVED, actor_id=user.id, question_id=question.id,
                               answer_id=answer.id)
    return await get_question(question.id)


async def edit_question(user: User, question_id: int, *, title: object, body: object, tags: list[str],
                        comment: str = "", jobs: JobQueue | None) -> Question:
    question = await get_question(question_id)
    permissions.ensure(permissions.can_edit(user, question.author_id),
                       "only the author or staff can edit this question")
    new_title, new_body = check_title(title), check_body(body)
    at = now()
    async with in_transaction():
        number = await Revision.filter(question_id=question.id).count() + 1
        await Revision.create(question=question, editor=user, number=number, title=new_title, body=new_body,
                              tags=" ".join(tags), comment=comment[:300])
        await Question.filter(id=question.id).update(title=new_title, body=new_body, updated_at=at,
                                                     last_activity_at=at)
        await _set_tags(question, tags)
    if jobs is not None:
        await jobs.enqueue(JobName.EMBED_QUESTION, job_id=f"embed-question:{question.id}:{at.timestamp()}",
                           question_id=question.id)
    return await get_question(question.id)


async def edit_answer(user: User, answer_id: int, *, body: object, comment: str = "",
                      trusted_reputation: int = 100) -> Answer:
    answer = await get_answer(answer_id)
    permissions.ensure(
        permissions.can_edit(user, answer.author_id, is_wiki=answer.is_wiki,
                             trusted_reputation=trusted_reputation),
        "only the author, staff, or trusted users on a community-wiki answer can edit this answer",
    )
    text = check_body(body, min_len=ANSWER_MIN)
    async with in_transaction():
        number = await Revision.filter(answer_id=answer.id).count() + 1
        await Revision.create(answer=answer, editor=user, number=number, body=text, comment=comment[:300])
        await Answer.filter(id=answer.id).update(body=text, updated_at=now())
    return await get_answer(answer.id)


async def revision_history(*, question_id: int | None = None, answer_id: int | None = None,
                           reveal: bool = False) -> list[dict[str, Any]]:
    """Each revision with a unified diff against the one before it, newest first. A hidden post's history
    is for staff (`reveal`) only."""
    key = {"answer_id": answer_id} if answer_id else {"question_id": question_id}
    model = Answer if answer_id else Question
    if not reveal and await model.filter(id=answer_id or question_id, hidden_at__not_isnull=True).exists():
        raise NotFound("this post was hidden by a moderator")
    revisions = await Revision.filter(**key).order_by("number").prefetch_related("editor")
    if not revisions:
        raise NotFound("no such post")
    history, before = [], ""
    for rev in revisions:
        text = f"{rev.title}\n\n{rev.body}\n\ntags: {rev.tags}" if rev.title is not None else rev.body
        diff = list(difflib.unified_diff(before.splitlines(), text.splitlines(), "before", "after", lineterm="", n=2))
        history.append({
            "number": rev.number, "editor": rev.editor.username if rev.editor else None,
            "at": rev.created_at.isoformat(), "title": rev.title, "body": rev.body, "tags": rev.tags.split(),
            "comment": rev.comment, "diff": diff[2:],
        })
        before = text
    return list(reversed(history))


async def mark_duplicate(user: User, question_id: int, original_id: int) -> Question:
    """Closes a question as a duplicate: a link to the original, never a deletion."""
    permissions.ensure(permissions.can_moderate(user), "only staff can close questions as duplicates")
    if question_id == original_id:
        raise InvalidInput("a question cannot duplicate itself", field="duplicate_of")
    question, original = await get_question(question_id), await get_question(original_id)
    while original.duplicate_of_id is not None:
        if original.duplicate_of_id == question.id:
            raise InvalidInput("that would make a circle of duplicates", field="duplicate_of")
        original = await get_question(original.duplicate_of_id)
    async with in_transaction():
        await Question.filter(id=question.id).update(duplicate_of_id=original.id, status=QuestionStatus.DUPLICATE)
        await record_event(EventKind.DUPLICATE_LINKED, actor_id=user.id, question_id=question.id,
                           original_id=original.id)
    return await get_question(question.id)


FILTERS: dict[str, dict[str, Any]] = {
    "open": {"status": QuestionStatus.OPEN},
    "swarming": {"status": QuestionStatus.SWARMING},
    "resolved": {"status": QuestionStatus.RESOLVED},
    "duplicate": {"status": QuestionStatus.DUPLICATE},
    "unanswered": {"answer_count": 0, "status__in": [QuestionStatus.OPEN, QuestionStatus.SWARMING]},
}


async def list_questions(*, status: str | None = None, tag: str | None = None, page: int = 1,
                         author_id: int | None = None, per_page: int = PAGE_SIZE) -> tuple[list[Question], int]:
    if status and status not in FILTERS:
        raise InvalidInput(f"status must be one of {', '.join(FILTERS)}", field="status")
    if tag and not TAG_RE.match(tag.lower()):  # no such tag can exist; checked here, not by the ORM (a 500)
        raise InvalidInput("tag may use a-z, 0-9 and + # . - (at most 32 characters)", field="tag")
    query = Question.filter(hidden_at=None)  # hidden by a moderator: found through /admin/flags
    if status:
        query = query.filter(**FILTERS[status])
    if tag:
        query = query.filter(tags__name=tag.lower())
    if author_id is not None:
        query = query.filter(author_id=author_id)
    total = await query.count()
    items = (await query.order_by("-last_activity_at", "-id").offset((page - 1) * per_page).limit(per_page)
             .prefetch_related("tags", "author"))
    return list(items), total


def question_summary(q: Question) -> dict[str, Any]:
    return {
        "id": q.id, "external_id": q.external_id, "title": q.title, "status": str(q.status), "score": q.score,
        "answer_count": q.answer_count, "tags": [t.name for t in q.tags],
        "author": q.author.username if q.author else None,
        "accepted_answer_id": q.accepted_answer_id,
        "duplicate_of_id": q.duplicate_of_id,
        "created_at": q.created_at.isoformat(), "last_activity_at": q.last_activity_at.isoformat(),
    }


def answer_dict(a: Answer) -> dict[str, Any]:
    return {
        "id": a.id, "question_id": a.question_id, "body": a.body, "score": a.score,
        "is_accepted": a.is_accepted, "is_wiki": a.is_wiki,
        "from_swarm_id": a.from_swarm_id,
        "author": a.author.username if a.author else None, "created_at": a.created_at.isoformat(),
    }


async def question_detail(question_id: int, *, reveal: bool = False) -> dict[str, Any]:
    """The question page's content. Hidden posts show their text to staff only (`reveal`)."""
    q = await get_question(question_id)
    answers = await Answer.filter(question_id=q.id).order_by("-is_accepted", "-score", "created_at") \
        .prefetch_related("author")
    comments = await Comment.filter(question_id=q.id).order_by("created_at").prefetch_related("author")
    answer_comments = await Comment.filter(answer_id__in=[a.id for a in answers]).order_by("created_at") \
        .prefetch_related("author")
    detail = question_summary(q) | {
        "title": shown(q.title, q.hidden_at, reveal=reveal), "body": shown(q.body, q.hidden_at, reveal=reveal),
        "hidden": q.hidden_at is not None, "answers": [], "comments": [_comment(c, reveal) for c in comments],
    }
    for a in answers:
        detail["answers"].append(answer_dict(a) | {
            "body": shown(a.body, a.hidden_at, reveal=reveal), "hidden": a.hidden_at is not None,
            "comments": [_comment(c, reveal) for c in answer_comments
                         if c.answer_id == a.id],
        })
    return detail


def _comment(c: Comment, reveal: bool) -> dict[str, Any]:
    return {"id": c.id, "body": shown(c.body, c.hidden_at, reveal=reveal), "hidden": c.hidden_at is not None,
            "author": c.author.username if c.author else None, "created_at": c.created_at.isoformat()}


async def user_vote_map(user: User | None, question_id: int, answer_ids: list[int]) -> dict[str, int]:
    if user is None:
        return {}
    votes = await Vote.filter(user=user).filter(question_id=question_id).all()
    votes += await Vote.filter(user=user, answer_id__in=answer_ids).all()
    return {(f"a{v.answer_id}" if v.answer_id else "q"): v.value for v in votes}
