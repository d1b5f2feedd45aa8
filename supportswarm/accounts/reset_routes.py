"""Password reset pages: "forgot password?" (a mail, when SMTP is configured) and the one-time link."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from supportswarm.accounts import recovery
from supportswarm.accounts.sessions import start_session
from supportswarm.errors import SwarmError
from supportswarm.httpkit import form_data, render
from supportswarm.ratelimit import reset_mail_allowed
from supportswarm.settings import Settings


def _mail_enabled(request: Request) -> bool:
    settings: Settings = request.app.state.settings
    return settings.mail_enabled


async def forgot_page(request: Request) -> Response:
    if request.method == "GET":
        return render(request, "accounts/forgot.html", {"mail_enabled": _mail_enabled(request)})
    data = await form_data(request)
    if not _mail_enabled(request):
        return render(request, "accounts/forgot.html", {"mail_enabled": False})
    try:
        if await reset_mail_allowed(request, data.get("login")):
            await recovery.request_mail(data.get("login"), jobs=request.state.jobs)
    except SwarmError as exc:
        return render(request, "accounts/forgot.html", {"mail_enabled": True, "error": exc.detail}, exc.status)
    # The same answer whether or not an account matched.
    return render(request, "accounts/forgot.html", {"mail_enabled": True, "sent": True})


async def reset_page(request: Request) -> Response:
    token = request.path_params["token"]
    if request.method == "GET":
        try:
            user = await recovery.user_for_link(token)
        except SwarmError as exc:
            return render(request, "accounts/reset.html", {"error": exc.detail, "invalid": True}, exc.status)
        return render(request, "accounts/reset.html", {"account": user, "token": token})
    data = await form_data(request)
    try:
        user = await recovery.reset_password(token, data.get("password"), broker=request.state.broker)
    except SwarmError as exc:
        invalid = exc.field == "token"
        return render(request, "accounts/reset.html", {"error": exc.detail, "invalid": invalid, "token": token},
                      exc.status)
    response = RedirectResponse("/", status_code=303)
    start_session(request, response, user)  # signed in here, in the new generation; every other session ended
    return response


routes = [
    Route("/forgot-password", forgot_page, methods=["GET", "POST"], name="forgot_password"),
    Route("/reset-password/{token:str}", reset_page, methods=["GET", "POST"], name="reset_password"),
]
