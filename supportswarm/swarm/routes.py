"""Swarm HTTP: open a question's swarm, read a swarm, the ranked inbox, and the room and inbox pages."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from supportswarm import validation
from supportswarm.accounts import permissions
from supportswarm.errors import InvalidInput
from supportswarm.httpkit import body_data, login_required, ok, path_id, render, user_of
from supportswarm.settings import Settings
from supportswarm.swarm import expertise, services, ws
from supportswarm.swarm.models import Swarm


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def ws_url(request: Request, swarm_id: int) -> str:
    scheme = "wss" if request.url.scheme == "https" else "ws"
    return f"{scheme}://{request.url.netloc}/ws/swarms/{swarm_id}"


def _swarm_reply(request: Request, swarm: Swarm) -> dict[str, object]:
    return {"id": swarm.id, "question_id": swarm.question_id, "status": str(swarm.status),
            "ws_url": ws_url(request, swarm.id)}


async def api_open_swarm(request: Request) -> Response:
    user = login_required(request)
    swarm, created = await services.start_swarm(path_id(request), user, broker=request.state.broker,
                                                jobs=request.state.jobs,
                                                expert_reputation=_settings(request).expert_reputation)
    return ok(_swarm_reply(request, swarm), 201 if created else 200)


async def open_swarm_form(request: Request) -> Response:
    user = login_required(request)
    await body_data(request)  # checks the form's CSRF token
    swarm, _created = await services.start_swarm(path_id(request), user, broker=request.state.broker,
                                                 jobs=request.state.jobs,
                                                 expert_reputation=_settings(request).expert_reputation)
    return RedirectResponse(f"/swarms/{swarm.id}", status_code=303)


def _page_args(request: Request) -> tuple[int, int]:
    q = request.query_params
    after = validation.integer(q.get("after"), "after", default=0, lo=0, hi=2**31 - 1)
    limit = validation.integer(q.get("limit"), "limit", default=services.BACKLOG_PAGE, lo=1, hi=500)
    return after, limit


async def api_get_swarm(request: Request) -> Response:
    after, limit = _page_args(request)
    view = await services.swarm_view(path_id(request), user_of(request), after=after, limit=limit,
                                     broker=request.state.broker,
                                     expert_reputation=_settings(request).expert_reputation)
    return ok(view)


async def api_list_swarms(request: Request) -> Response:
    user = login_required(request)
    status = request.query_params.get("status") or "open"
    if status != "open":
        raise InvalidInput("status must be open (resolved swarms are listed on their questions)", field="status")
    s = _settings(request)
    items = await expertise.ranked_inbox(user, expert_reputation=s.expert_reputation, urgent_tags=s.swarm_urgent_tags,
                                     sla_minutes=s.sla_minutes)
    return ok({"items": items, "total": len(items)})


async def room_page(request: Request) -> Response:
    after, limit = _page_args(request)
    view = await services.swarm_view(path_id(request), user_of(request), after=after, limit=limit,
                                     broker=request.state.broker,
                                     expert_reputation=_settings(request).expert_reputation)
    user, s = user_of(request), _settings(request)
    live = view["swarm"]["status"] == "open" and view["can_join"]
    can_mark = live and user is not None and (user.id == view["swarm"]["question"]["asker_id"]
                                              or permissions.is_helper(user, expert_reputation=s.expert_reputation))
    return render(request, "swarm/room.html", {
        "view": view, "swarm": view["swarm"], "live": live, "can_mark": can_mark,
        "ws_path": f"/ws/swarms/{view['swarm']['id']}", "max_body": services.MESSAGE_MAX,
        "solution_seq": view["solution_seq"],
    })


async def inbox_page(request: Request) -> Response:
    user = login_required(request)
    s = _settings(request)
    items = await expertise.ranked_inbox(user, expert_reputation=s.expert_reputation, urgent_tags=s.swarm_urgent_tags,
                                     sla_minutes=s.sla_minutes)
    return render(request, "swarm/inbox.html", {"items": items})


routes = [
    Route("/api/v1/questions/{id:int}/swarm", api_open_swarm, methods=["POST"], name="api_open_swarm"),
    Route("/api/v1/swarms", api_list_swarms, methods=["GET"], name="api_swarms"),
    Route("/api/v1/swarms/{id:int}", api_get_swarm, methods=["GET"], name="api_swarm"),
    Route("/questions/{id:int}/swarm", open_swarm_form, methods=["POST"], name="open_swarm"),
    Route("/swarms/{id:int}", room_page, methods=["GET"], name="swarm_room"),
    Route("/inbox", inbox_page, methods=["GET"], name="inbox"),
    *ws.routes,
]
