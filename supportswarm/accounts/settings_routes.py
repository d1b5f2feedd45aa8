"""A signed-in user's own account: /settings (email, password, API tokens) and /api/v1/me/*."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from supportswarm.accounts import services
from supportswarm.accounts.models import User
from supportswarm.accounts.sessions import start_session
from supportswarm.errors import RateLimited, SwarmError
from supportswarm.httpkit import body_data, form_data, login_required, ok, path_id, render
from supportswarm.ratelimit import login_attempt

DONE = {"email": "Your email address is saved.", "password": "Your password is changed; every other session "
        "of yours is signed out.", "revoked": "The token is revoked."}


async def _change_password(request: Request, user: User, data: dict[str, Any]) -> None:
    """The current password is checked under the login backoff, so this form cannot be used to guess it."""
    async with login_attempt(request, user.username):
        await services.change_password(user, data, broker=request.state.broker)


def _keep_signed_in(request: Request, response: Response, user: User) -> Response:
    """This session carries on in the new generation; the others end."""
    if request.state.auth_method == "cookie":
        start_session(request, response, user)
    return response


# --- API -----------------------------------------------------------------------------------------


async def api_me(request: Request) -> Response:
    return ok({"user": services.me_dict(login_required(request))})


async def api_update_me(request: Request) -> Response:
    user = login_required(request)
    return ok({"user": services.me_dict(await services.change_email(user, await body_data(request)))})


async def api_password(request: Request) -> Response:
    user = login_required(request)
    await _change_password(request, user, await body_data(request))
    return _keep_signed_in(request, ok({"ok": True}), user)


async def api_tokens(request: Request) -> Response:
    user = login_required(request)
    return ok({"items": [services.token_dict(t) for t in await services.list_tokens(user)]})


async def api_create_token(request: Request) -> Response:
    user = login_required(request)
    row, token = await services.create_named_token(user, await body_data(request))
    return ok(services.token_dict(row) | {"token": token}, 201)


async def api_revoke_token(request: Request) -> Response:
    await services.revoke_token(login_required(request), path_id(request))
    return ok({"deleted": True})


# --- pages ---------------------------------------------------------------------------------------


async def _page(request: Request, user: User, status: int = 200, **context: Any) -> Response:
    context.setdefault("done", DONE.get(request.query_params.get("done", "")))
    return render(request, "accounts/settings.html",
                  {"me": user, "tokens": await services.list_tokens(user), **context}, status)


async def settings_page(request: Request) -> Response:
    return await _page(request, login_required(request))


async def email_form(request: Request) -> Response:
    user = login_required(request)
    data = await form_data(request)
    try:
        await services.change_email(user, data)
    except SwarmError as exc:
        return await _page(request, user, exc.status, error=exc.detail, field=exc.field, form=data)
    return RedirectResponse("/settings?done=email", status_code=303)


async def password_form(request: Request) -> Response:
    user = login_required(request)
    data = await form_data(request)
    try:
        await _change_password(request, user, data)
    except SwarmError as exc:
        if isinstance(exc, RateLimited):  # locked out: the readable 429 page with Retry-After
            raise
        return await _page(request, user, exc.status, error=exc.detail, field=exc.field)
    return _keep_signed_in(request, RedirectResponse("/settings?done=password", status_code=303), user)


async def token_form(request: Request) -> Response:
    user = login_required(request)
    data = await form_data(request)
    try:
        row, token = await services.create_named_token(user, data)
    except SwarmError as exc:
        return await _page(request, user, exc.status, error=exc.detail, field=exc.field, form=data)
    return await _page(request, user, new_token={"name": row.name, "token": token})


async def revoke_form(request: Request) -> Response:
    user = login_required(request)
    await form_data(request)
    await services.revoke_token(user, path_id(request))
    return RedirectResponse("/settings?done=revoked", status_code=303)


routes = [
    Route("/api/v1/me", api_me, methods=["GET"], name="api_me"),
    Route("/api/v1/me", api_update_me, methods=["PATCH"], name="api_update_me"),
    Route("/api/v1/me/password", api_password, methods=["POST"], name="api_change_password"),
    Route("/api/v1/me/tokens", api_tokens, methods=["GET"], name="api_tokens"),
    Route("/api/v1/me/tokens", api_create_token, methods=["POST"], name="api_create_token"),
    Route("/api/v1/me/tokens/{id:int}", api_revoke_token, methods=["DELETE"], name="api_revoke_token"),
    Route("/settings", settings_page, methods=["GET"], name="settings"),
    Route("/settings/email", email_form, methods=["POST"], name="settings_email"),
    Route("/settings/password", password_form, methods=["POST"], name="settings_password"),
    Route("/settings/tokens", token_form, methods=["POST"], name="settings_create_token"),
    Route("/settings/tokens/{id:int}/revoke", revoke_form, methods=["POST"], name="settings_revoke_token"),
]
