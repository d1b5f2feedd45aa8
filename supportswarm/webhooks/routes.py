"""Webhook administration: the JSON API under /api/v1/webhooks and the /admin/webhooks pages (admins only)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from supportswarm import validation
from supportswarm.accounts import permissions
from supportswarm.accounts.models import User
from supportswarm.errors import SwarmError
from supportswarm.httpkit import body_data, form_data, login_required, ok, path_id, render
from supportswarm.webhooks import services


def _admin(request: Request) -> User:
    user = login_required(request)
    permissions.ensure(permissions.can_manage_webhooks(user), "only admins can manage webhooks")
    return user


def _page(request: Request) -> int:
    return validation.integer(request.query_params.get("page"), "page", default=1, lo=1, hi=100_000)


# --- API -----------------------------------------------------------------------------------------


async def api_list(request: Request) -> Response:
    _admin(request)
    return ok({"items": await services.list_webhooks()})


async def api_create(request: Request) -> Response:
    user = _admin(request)
    data = await body_data(request)
    hook = await services.create_webhook(user, data.get("url"), events=data.get("events"),
                                         description=data.get("description"))
    return ok(services.webhook_dict(hook, with_secret=True), 201)


async def api_detail(request: Request) -> Response:
    _admin(request)
    return ok(await services.webhook_log(path_id(request), page=_page(request)))


async def api_delete(request: Request) -> Response:
    _admin(request)
    await services.delete_webhook(path_id(request))
    return ok({"deleted": True})


async def api_redeliver(request: Request) -> Response:
    _admin(request)
    delivery = await services.redeliver(path_id(request), jobs=request.state.jobs)
    return ok({"id": delivery.id, "status": str(delivery.status)}, 202)


# --- pages ---------------------------------------------------------------------------------------


async def list_page(request: Request) -> Response:
    _admin(request)
    return render(request, "webhooks/list.html", {"hooks": await services.list_webhooks(),
                                                  "kinds": [str(k) for k in services.EVENT_KINDS]})


async def create_page(request: Request) -> Response:
    user = _admin(request)
    data = await form_data(request)
    try:
        hook = await services.create_webhook(user, data.get("url"), events=_form_events(data),
                                             description=data.get("description"))
    except SwarmError as exc:
        context = {"hooks": await services.list_webhooks(), "kinds": [str(k) for k in services.EVENT_KINDS],
                   "error": exc.detail, "field": exc.field, "form": data}
        return render(request, "webhooks/list.html", context, exc.status)
    return RedirectResponse(f"/admin/webhooks/{hook.id}", status_code=303)


def _form_events(data: dict[str, str]) -> list[str]:
    # Checkboxes arrive as `event_<kind>=on`; none ticked means every kind, as in the API.
    return [k for k in (str(kind) for kind in services.EVENT_KINDS) if data.get(f"event_{k}")]


async def detail_page(request: Request) -> Response:
    _admin(request)
    return render(request, "webhooks/detail.html", await services.webhook_log(path_id(request), page=_page(request)))


async def delete_page(request: Request) -> Response:
    _admin(request)
    await form_data(request)
    await services.delete_webhook(path_id(request))
    return RedirectResponse("/admin/webhooks", status_code=303)


async def redeliver_page(request: Request) -> Response:
    _admin(request)
    await form_data(request)
    delivery = await services.redeliver(path_id(request), jobs=request.state.jobs)
    return RedirectResponse(f"/admin/webhooks/{delivery.webhook_id}", status_code=303)


routes = [
    Route("/api/v1/webhooks", api_list, methods=["GET"], name="api_webhooks"),
    Route("/api/v1/webhooks", api_create, methods=["POST"], name="api_create_webhook"),
    Route("/api/v1/webhooks/{id:int}", api_detail, methods=["GET"], name="api_webhook"),
    Route("/api/v1/webhooks/{id:int}", api_delete, methods=["DELETE"], name="api_delete_webhook"),
    Route("/api/v1/webhooks/deliveries/{id:int}/redeliver", api_redeliver, methods=["POST"], name="api_redeliver"),
    Route("/admin/webhooks", list_page, methods=["GET"], name="webhooks"),
    Route("/admin/webhooks", create_page, methods=["POST"], name="create_webhook"),
    Route("/admin/webhooks/{id:int}", detail_page, methods=["GET"], name="webhook"),
    Route("/admin/webhooks/{id:int}/delete", delete_page, methods=["POST"], name="delete_webhook"),
    Route("/admin/webhooks/deliveries/{id:int}/redeliver", redeliver_page, methods=["POST"], name="redeliver"),
]
