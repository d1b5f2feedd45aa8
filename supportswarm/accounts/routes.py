from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from supportswarm.accounts import admin_routes, reset_routes, services, settings_routes
from supportswarm.accounts.sessions import SessionSigner, start_session
from supportswarm.errors import NotAuthenticated, SwarmError
from supportswarm.forum.services import list_questions
from supportswarm.httpkit import body_data, form_data, ok, render, user_of
from supportswarm.ratelimit import login_attempt


def _signer(request: Request) -> SessionSigner:
    signer: SessionSigner = request.app.state.signer
    return signer


async def api_signup(request: Request) -> Response:
    data = await body_data(request)
    user = await services.register(data.get("username"), data.get("password"), email=data.get("email"))
    response = ok({"user": user.public(), "token": await services.create_token(user, name="signup")}, 201)
    start_session(request, response, user)
    return response


async def api_login(request: Request) -> Response:
    data = await body_data(request)
    async with login_attempt(request, data.get("username")):
        user = await services.authenticate(data.get("username"), data.get("password"))
    response = ok({"user": user.public(), "token": await services.create_token(user, name="login")})
    start_session(request, response, user)
    return response


def _clear_cookie(request: Request, response: Response) -> Response:
    response.headers.append("set-cookie", _signer(request).cookie_header("", secure=False, max_age=0))
    return response


async def api_logout(request: Request) -> Response:
    return _clear_cookie(request, ok({"ok": True}))


async def login_page(request: Request) -> Response:
    if request.method == "GET":
        return render(request, "accounts/login.html", {"next": request.query_params.get("next", "/")})
    data = await form_data(request)
    try:
        async with login_attempt(request, data.get("username")):
            user = await services.authenticate(data.get("username"), data.get("password"))
    except NotAuthenticated as exc:  # a lockout (RateLimited) is answered 429 with Retry-After instead
        return render(request, "accounts/login.html", {"error": exc.detail, "form": data}, 400)
    response = RedirectResponse(_safe_next(data.get("next")), status_code=303)
    start_session(request, response, user)
    return response


async def signup_page(request: Request) -> Response:
    if request.method == "GET":
        return render(request, "accounts/signup.html")
    data = await form_data(request)
    try:
        user = await services.register(data.get("username"), data.get("password"), email=data.get("email"))
    except SwarmError as exc:
        return render(request, "accounts/signup.html", {"error": exc.detail, "field": exc.field, "form": data}, 400)
    response = RedirectResponse("/", status_code=303)
    start_session(request, response, user)
    return response


async def logout_page(request: Request) -> Response:
    await form_data(request)
    return _clear_cookie(request, RedirectResponse("/", status_code=303))


def _safe_next(target: str | None) -> str:
    """Only local paths, so the login form cannot be used as an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


async def profile_page(request: Request) -> Response:
    profile = await services.get_user_by_name(request.path_params["username"])
    questions, total = await list_questions(author_id=profile.id, per_page=10)
    return render(request, "accounts/profile.html", {"profile": profile, "questions": questions,
                                                       "question_total": total, "me": user_of(request)})


routes = [
    *settings_routes.routes,
    *admin_routes.routes,
    *reset_routes.routes,
    Route("/api/v1/auth/signup", api_signup, methods=["POST"], name="api_signup"),
    Route("/api/v1/auth/login", api_login, methods=["POST"], name="api_login"),
    Route("/api/v1/auth/logout", api_logout, methods=["POST"], name="api_logout"),
    Route("/login", login_page, methods=["GET", "POST"], name="login"),
    Route("/signup", signup_page, methods=["GET", "POST"], name="signup"),
    Route("/logout", logout_page, methods=["POST"], name="logout"),
    Route("/users/{username}", profile_page, methods=["GET"], name="profile"),
]
