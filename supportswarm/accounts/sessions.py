"""Who is asking: a signed session cookie (browsers) or a bearer token (scripts), and CSRF for cookies.

Pure ASGI middleware, so it serves websockets too. It resolves the user once per request into
`scope["state"]["user"]`. A cookie names the user's session generation: changing the password (or a
reset, or a deactivation) bumps it, and every cookie of an older generation stops working.
Cookie-authenticated unsafe requests must carry the session's CSRF token, in the `X-CSRF-Token` header
or, for HTML forms, the `csrf_token` field (checked by `httpkit.form_data`). Cross-site Origins on
unsafe cookie requests are refused outright.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from supportswarm.accounts import services
from supportswarm.accounts.models import User

COOKIE = "ss_session"
MAX_AGE = 30 * 24 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass
class Session:
    user_id: int
    csrf: str
    generation: int = 0


class SessionSigner:
    def __init__(self, secret_key: str) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="supportswarm-session")

    def dumps(self, session: Session) -> str:
        return self._serializer.dumps({"u": session.user_id, "c": session.csrf, "g": session.generation})

    def loads(self, raw: str) -> Session | None:
        try:
            data = self._serializer.loads(raw, max_age=MAX_AGE)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("u"), int) or not isinstance(data.get("c"), str):
            return None
        generation = data.get("g", 0)  # cookies from before generations existed are generation 0
        if not isinstance(generation, int):
            return None
        return Session(user_id=data["u"], csrf=data["c"], generation=generation)

    def new_session(self, user: User) -> Session:
        return Session(user_id=user.id, csrf=secrets.token_urlsafe(24), generation=user.session_generation)

    def cookie_header(self, value: str, *, secure: bool, max_age: int = MAX_AGE) -> str:
        parts = [f"{COOKIE}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly", "SameSite=Lax"]
        if secure:
            parts.append("Secure")
        return "; ".join(parts)


def start_session(request: Request, response: Response, user: User) -> None:
    """Signs `user` in on this browser: a new session cookie (and CSRF token) in the user's current generation."""
    signer: SessionSigner = request.app.state.signer
    value = signer.dumps(signer.new_session(user))
    response.headers.append("set-cookie", signer.cookie_header(value, secure=request.url.scheme == "https"))


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}


def same_origin(origin: str, host: str, allowed: tuple[str, ...] = ()) -> bool:
    if origin in allowed:
        return True
    netloc = urlsplit(origin).netloc
    return bool(netloc) and netloc == host


class AuthMiddleware:
    def __init__(self, app: ASGIApp, *, signer: SessionSigner, allowed_origins: tuple[str, ...] = ()) -> None:
        self.app = app
        self.signer = signer
        self.allowed_origins = allowed_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        state: dict[str, Any] = scope.setdefault("state", {})
        user, session, method = await self._identify(headers)
        if user is not None:
            await services.mark_seen(user)
        state.update(user=user, session=session, auth_method=method, csrf_pending=False)
        if scope["type"] == "http" and method != "bearer" and scope["method"] not in SAFE_METHODS:
            # Without a session only the Origin is checked: a cross-site form must not log the visitor
            # into someone else's account (login CSRF) or sign them up.
            problem = self._csrf_problem(headers, session) if method == "cookie" else self._origin_problem(headers)
            if problem == "form":
                state["csrf_pending"] = True
            elif problem:
                await _reject(send, problem)
                return
        await self.app(scope, receive, send)

    async def _identify(self, headers: dict[str, str]) -> tuple[User | None, Session | None, str | None]:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return await services.user_for_token(auth[7:].strip()), None, "bearer"
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is treated as no cookie
            return None, None, None
        morsel = cookie.get(COOKIE)
        session = self.signer.loads(morsel.value) if morsel else None
        if session is None:
            return None, None, None
        user = await services.get_user(session.user_id)
        if user is None or user.session_generation != session.generation:
            return None, None, None
        return user, session, "cookie"

    def _origin_problem(self, headers: dict[str, str]) -> str:
        origin = headers.get("origin")
        if origin and not same_origin(origin, headers.get("host", ""), self.allowed_origins):
            return "cross-site request refused"
        return ""

    def _csrf_problem(self, headers: dict[str, str], session: Session | None) -> str:
        if problem := self._origin_problem(headers):
            return problem
        token = headers.get("x-csrf-token")
        if token is not None:
            ok = session is not None and secrets.compare_digest(token, session.csrf)
            return "" if ok else "CSRF token is missing or wrong"
        if headers.get("content-type", "").startswith(FORM_TYPES):
            return "form"
        return "CSRF token is missing or wrong"


async def _reject(send: Send, detail: str) -> None:
    body = json.dumps({"error": {"code": "csrf_failed", "detail": detail}}).encode()
    start: Message = {
        "type": "http.response.start",
        "status": 403,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})
