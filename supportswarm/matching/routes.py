"""Matching HTTP: /api/v1/similar, route on ask (API and the /ask page), the customer's verdict."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from supportswarm import validation
from supportswarm.errors import InvalidInput
from supportswarm.forum import services as forum
from supportswarm.httpkit import body_data, login_required, ok, path_id, render
from supportswarm.matching import routing, services
from supportswarm.settings import Settings

Q_MAX = 2000  # a title and the start of a body; the model reads 256 word pieces at most anyway


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _policy(request: Request) -> routing.AskPolicy:
    settings = _settings(request)
    return routing.AskPolicy(answer_threshold=settings.answer_threshold, urgent_tags=settings.swarm_urgent_tags)


def strict_query_param(request: Request, name: str) -> str | None:
    """A query parameter decoded as strict UTF-8 (Starlette replaces bad bytes with U+FFFD silently)."""
    raw: bytes = request.scope.get("query_string", b"")
    for pair in raw.split(b"&"):
        key, _, value = pair.partition(b"=")
        if unquote_to_bytes(key.replace(b"+", b" ")) != name.encode():
            continue
        try:
            return unquote_to_bytes(value.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{name} must be UTF-8 text", field=name) from None
    return None


def _similar_args(request: Request) -> tuple[str, int]:
    q = validation.text({"q": strict_query_param(request, "q")}, "q", max_len=Q_MAX)
    limit = validation.integer(request.query_params.get("limit"), "limit", default=services.DEFAULT_LIMIT, lo=1,
                               hi=services.MAX_LIMIT)
    return q, limit


async def api_similar(request: Request) -> Response:
    q, limit = _similar_args(request)
    data, timings = await services.similar_json(q, limit=limit, embedder=request.state.embedder,
                                                answer_threshold=_settings(request).answer_threshold)
    response = ok(data)
    # Where the time went (browser dev tools show it; bench/similar_latency.py reads the embedding floor).
    response.headers["Server-Timing"] = ", ".join(f"{k};dur={1000 * v:.2f}" for k, v in timings.items())
    return response


# --- route on ask ------------------------------------------------------------------------------------------


def _draft(data: dict[str, Any]) -> routing.Draft:
    return routing.check_draft(data.get("title"), data.get("body"), validation.tags(data.get("tags")))


def _force(data: dict[str, Any]) -> bool:
    value = data.get("force", False)
    if value in (True, "1", "true", "on"):
        return True
    if value in (False, None, "", "0", "false"):
        return False
    raise InvalidInput("force must be true or false", field="force")


async def _routed_json(routed: routing.Routed) -> Response:
    if routed.question is None:
        return ok({"route": routed.route})
    question = await forum.get_question(routed.question.id)
    return ok({"question": forum.question_summary(question), "route": routed.route}, 201)


async def api_ask(request: Request) -> Response:
    user = login_required(request)
    data = await body_data(request)
    routed = await routing.ask_question(user, _draft(data), force=_force(data), policy=_policy(request),
                                        embedder=request.state.embedder, broker=request.state.broker,
                                        jobs=request.state.jobs)
    return await _routed_json(routed)


async def api_accept_suggestion(request: Request) -> Response:
    suggestion = await routing.accept_suggestion(path_id(request), login_required(request))
    return ok({"suggestion_id": suggestion.id, "outcome": str(suggestion.outcome),
               "question_id": suggestion.suggested_question_id,
               "answer_id": suggestion.suggested_answer_id})


async def api_reject_suggestion(request: Request) -> Response:
    routed = await routing.reject_suggestion(path_id(request), login_required(request), policy=_policy(request),
                                             broker=request.state.broker, jobs=request.state.jobs)
    return await _routed_json(routed)


# --- pages -------------------------------------------------------------------------------------------------


def _page_after(routed: routing.Routed) -> Response:
    route = routed.route
    if route["type"] == "suggested_answer":
        target = f"/ask/suggestions/{route['suggestion_id']}"
    elif route["type"] == "swarm":
        target = f"/swarms/{route['swarm_id']}"
    else:
        target = f"/questions/{routed.question.id if routed.question else ''}"
    return RedirectResponse(target, status_code=303)


async def ask_page(request: Request) -> Response:
    return render(request, "matching/ask.html", {"form": {}, "error": None})


async def ask_form(request: Request) -> Response:
    user = login_required(request)
    data = await body_data(request)
    try:
        draft = _draft(data)
    except InvalidInput as exc:
        return render(request, "matching/ask.html", {"form": data, "error": exc}, status=400)
    routed = await routing.ask_question(user, draft, force=_force(data), policy=_policy(request),
                                        embedder=request.state.embedder, broker=request.state.broker,
                                        jobs=request.state.jobs)
    return _page_after(routed)


async def suggestion_page(request: Request) -> Response:
    view = await routing.suggestion_view(path_id(request), login_required(request))
    return render(request, "matching/suggestion.html", view)


async def accept_form(request: Request) -> Response:
    user = login_required(request)
    await body_data(request)  # checks the form's CSRF token
    suggestion = await routing.accept_suggestion(path_id(request), user)
    return RedirectResponse(f"/ask/suggestions/{suggestion.id}", status_code=303)


async def reject_form(request: Request) -> Response:
    user = login_required(request)
    await body_data(request)
    routed = await routing.reject_suggestion(path_id(request), user, policy=_policy(request),
                                             broker=request.state.broker, jobs=request.state.jobs)
    return _page_after(routed)


routes = [
    Route("/api/v1/similar", api_similar, methods=["GET"], name="api_similar"),
    Route("/api/v1/questions", api_ask, methods=["POST"], name="api_ask"),
    Route("/api/v1/suggestions/{id:int}/accept", api_accept_suggestion, methods=["POST"], name="api_accept_suggestion"),
    Route("/api/v1/suggestions/{id:int}/reject", api_reject_suggestion, methods=["POST"], name="api_reject_suggestion"),
    Route("/ask", ask_page, methods=["GET"], name="ask"),
    Route("/ask", ask_form, methods=["POST"], name="ask_post"),
    Route("/ask/suggestions/{id:int}", suggestion_page, methods=["GET"], name="suggestion"),
    Route("/suggestions/{id:int}/accept", accept_form, methods=["POST"], name="accept_suggestion"),
    Route("/suggestions/{id:int}/reject", reject_form, methods=["POST"], name="reject_suggestion"),
]
