"""Flagging (any signed-in member) and the moderation queue: the JSON API and the /admin/flags page (staff)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from supportswarm.accounts import permissions
from supportswarm.accounts.models import User
from supportswarm.httpkit import body_data, form_data, login_required, ok, path_id, render
from supportswarm.moderation import services
from supportswarm.moderation.services import Flagged, PostKind
from supportswarm.swarm import services as swarms


def _moderator(request: Request) -> User:
    user = login_required(request)
    permissions.ensure(permissions.can_moderate(user), "only staff can moderate flags")
    return user


def _flagged(result: Flagged) -> Response:
    flag = result.flag
    return ok({"id": flag.id, "reason": str(flag.reason), "status": str(flag.status), "hidden": result.hidden}, 201)


def _flag_route(kind: PostKind) -> Callable[[Request], Awaitable[Response]]:
    """Questions, answers and comments are flagged alike: one endpoint per kind, one body."""

    async def flag(request: Request) -> Response:
        user = login_required(request)
        data = await body_data(request)
        return _flagged(await services.flag_post(
            user, kind, path_id(request), reason=data.get("reason"), detail=data.get("detail"),
            flags_to_hide=request.app.state.settings.flags_to_hide))

    return flag


async def api_flag_message(request: Request) -> Response:
    user = login_required(request)
    data = await body_data(request)
    settings = request.app.state.settings
    swarm_id, seq = path_id(request, "swarm_id"), path_id(request, "seq")
    flagged = await services.flag_message(user, swarm_id, seq, reason=data.get("reason"), detail=data.get("detail"),
                                          flags_to_hide=settings.flags_to_hide,
                                          expert_reputation=settings.expert_reputation)
    if flagged.hidden:  # perhaps by this flag: open rooms show the message hidden
        await swarms.publish_message_update(swarm_id, seq, broker=request.state.broker)
    return _flagged(flagged)


async def api_queue(request: Request) -> Response:
    _moderator(request)
    return ok(await services.flag_queue(request.query_params.get("status")))


async def api_resolve(request: Request) -> Response:
    user = _moderator(request)
    data = await body_data(request)
    return ok(await _resolve(request, user, data.get("action")))


async def _resolve(request: Request, moderator: User, action: object) -> dict[str, Any]:
    result = await services.resolve_flag(moderator, path_id(request), action)
    post = result["post"]
    if post["kind"] == PostKind.MESSAGE:  # hidden or shown again: open rooms follow
        await swarms.publish_message_update(post["swarm_id"], post["seq"], broker=request.state.broker)
    return result


async def queue_page(request: Request) -> Response:
    _moderator(request)
    return render(request, "moderation/queue.html", await services.flag_queue(request.query_params.get("status")))


async def resolve_form(request: Request) -> Response:
    user = _moderator(request)
    data = await form_data(request)
    await _resolve(request, user, data.get("action"))
    return RedirectResponse("/admin/flags", status_code=303)


routes = [
    Route("/api/v1/questions/{id:int}/flag", _flag_route(PostKind.QUESTION), methods=["POST"],
          name="api_flag_question"),
    Route("/api/v1/answers/{id:int}/flag", _flag_route(PostKind.ANSWER), methods=["POST"], name="api_flag_answer"),
    Route("/api/v1/comments/{id:int}/flag", _flag_route(PostKind.COMMENT), methods=["POST"], name="api_flag_comment"),
    Route("/api/v1/swarms/{swarm_id:int}/messages/{seq:int}/flag", api_flag_message, methods=["POST"],
          name="api_flag_message"),
    Route("/api/v1/flags", api_queue, methods=["GET"], name="api_flags"),
    Route("/api/v1/flags/{id:int}/resolve", api_resolve, methods=["POST"], name="api_resolve_flag"),
    Route("/admin/flags", queue_page, methods=["GET"], name="flags"),
    Route("/admin/flags/{id:int}/resolve", resolve_form, methods=["POST"], name="resolve_flag"),
]
