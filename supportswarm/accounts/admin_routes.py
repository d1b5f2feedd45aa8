"""User administration: /admin/users and /api/v1/users. Admins change roles, deactivate and issue reset
links; leads may look at the list (no email addresses, no changes)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from supportswarm import validation
from supportswarm.accounts import permissions, recovery, services
from supportswarm.accounts.models import Role, User
from supportswarm.errors import SwarmError
from supportswarm.httpkit import body_data, form_data, login_required, ok, path_id, render
from supportswarm.settings import Settings

Q_MAX = 32


def _viewer(request: Request) -> User:
    user = login_required(request)
    permissions.ensure(permissions.can_view_users(user), "only admins and leads can see the user list")
    return user


def _admin(request: Request) -> User:
    user = login_required(request)
    permissions.ensure(permissions.can_manage_users(user), "only admins can manage users")
    return user


def _filters(request: Request) -> dict[str, Any]:
    params = request.query_params
    page = validation.integer(params.get("page"), "page", default=1, lo=1, hi=100_000)
    # the role is checked by services.list_users
    return {"q": validation.text(params, "q", max_len=Q_MAX, required=False), "role": params.get("role", ""),
            "page": page}


async def _listing(viewer: User, filters: dict[str, Any]) -> dict[str, Any]:
    users, total = await services.list_users(**filters)
    with_email = permissions.can_manage_users(viewer)
    return {"items": [services.admin_user_dict(u, with_email=with_email) for u in users], "page": filters["page"],
            "total": total, "per_page": services.USERS_PER_PAGE}


def _base_url(request: Request) -> str:
    """Links an admin hands over point at SUPPORTSWARM_PUBLIC_URL, else at the address the admin is using."""
    settings: Settings = request.app.state.settings
    return settings.public_url or str(request.base_url)


# --- API -----------------------------------------------------------------------------------------


async def api_users(request: Request) -> Response:
    viewer = _viewer(request)
    return ok(await _listing(viewer, _filters(request)))


async def api_update_user(request: Request) -> Response:
    actor = _admin(request)
    user = await services.update_user(actor, path_id(request), await body_data(request),
                                      broker=request.state.broker)
    return ok(services.admin_user_dict(user, with_email=True))


async def api_reset_link(request: Request) -> Response:
    actor = _admin(request)
    user = await services.get_any_user(path_id(request))
    link = await recovery.issue_link(user, base_url=_base_url(request), created_by=actor)
    return ok({"url": link.url, "expires_at": link.expires_at.isoformat()}, 201)


# --- pages ---------------------------------------------------------------------------------------


async def _page(request: Request, viewer: User, status: int = 200, **context: Any) -> Response:
    filters = _filters(request)
    listing = await _listing(viewer, filters)
    query = urlencode({k: v for k, v in filters.items() if v and k != "page"})
    return render(request, "accounts/admin_users.html",
                  {**listing, "filters": filters, "query": query, "roles": [str(r) for r in Role],
                   "can_manage": permissions.can_manage_users(viewer), **context}, status)


async def users_page(request: Request) -> Response:
    return await _page(request, _viewer(request))


async def update_form(request: Request) -> Response:
    actor = _admin(request)
    data = await form_data(request)
    # A checkbox is absent when unticked: the form always says what it wants.
    changes = {"role": data.get("role"), "is_active": data.get("is_active") == "on"}
    try:
        user = await services.update_user(actor, path_id(request), changes, broker=request.state.broker)
    except SwarmError as exc:
        return await _page(request, actor, exc.status, error=exc.detail)
    return RedirectResponse("/admin/users?" + urlencode({"q": user.username, "done": "saved"}), status_code=303)


async def reset_link_form(request: Request) -> Response:
    actor = _admin(request)
    await form_data(request)
    user = await services.get_any_user(path_id(request))
    try:
        link = await recovery.issue_link(user, base_url=_base_url(request), created_by=actor)
    except SwarmError as exc:
        return await _page(request, actor, exc.status, error=exc.detail)
    return await _page(request, actor, reset={"username": user.username, "url": link.url})


routes = [
    Route("/api/v1/users", api_users, methods=["GET"], name="api_users"),
    Route("/api/v1/users/{id:int}", api_update_user, methods=["PATCH"], name="api_update_user"),
    Route("/api/v1/users/{id:int}/password-reset", api_reset_link, methods=["POST"], name="api_reset_link"),
    Route("/admin/users", users_page, methods=["GET"], name="admin_users"),
    Route("/admin/users/{id:int}", update_form, methods=["POST"], name="admin_update_user"),
    Route("/admin/users/{id:int}/reset-link", reset_link_form, methods=["POST"], name="admin_reset_link"),
]
