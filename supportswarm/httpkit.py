"""What every route does the same way: read input, know the user, answer JSON or HTML, render errors."""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from supportswarm.accounts.models import User
from supportswarm.accounts.permissions import require_user
from supportswarm.errors import Forbidden, InvalidInput, PayloadTooLarge, RateLimited, SwarmError
from supportswarm.templating import templates

log = logging.getLogger(__name__)
MAX_BODY = 256 * 1024


def user_of(request: Request) -> User | None:
    user: User | None = request.state.user
    return user


def login_required(request: Request) -> User:
    return require_user(user_of(request))


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body must be at most {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body must be at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request, *, limit: int = MAX_BODY) -> dict[str, Any]:
    raw = await _read_limited(request, limit)
    if not raw:
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidInput("request body must be UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc.msg}") from None
    except RecursionError:
        raise InvalidInput("request body is nested too deeply") from None
    if not isinstance(data, dict):
        raise InvalidInput("request body must be a JSON object")
    for name, value in data.items():
        _check_storable(value, str(name))
    return data


def _check_storable(value: Any, field: str) -> None:
    """JSON can carry NUL and lone surrogates ("\\u0000", "\\ud800"); PostgreSQL text cannot store them.
    A 400 naming the field here, instead of a 500 from the database wherever the text ends up."""
    pending = [value]
    while pending:  # iterative: nesting depth is the client's choice
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise InvalidInput(f"{field} must not contain NUL characters", field=field)
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidInput(f"{field} is not valid Unicode text", field=field) from None
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.values())


async def form_data(request: Request, *, limit: int = MAX_BODY) -> dict[str, str]:
    """The submitted form as plain strings; checks the CSRF field the auth middleware deferred."""
    raw = await _read_limited(request, limit)
    from urllib.parse import parse_qsl

    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise InvalidInput("form must be UTF-8") from None
    data = dict(pairs)
    for name, value in data.items():
        _check_storable(value, name)  # "%00" decodes to NUL
    if request.state.csrf_pending:
        session = request.state.session
        token = data.get("csrf_token", "")
        if session is None or not secrets.compare_digest(token, session.csrf):
            raise Forbidden("the form expired; reload the page and try again", code="csrf_failed")
    return data


async def body_data(request: Request) -> dict[str, Any]:
    """JSON or an HTML form, whichever was sent: one service call serves both the API and the pages."""
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return dict(await form_data(request))
    return await json_body(request)


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")


def ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


def render(request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200) -> Response:
    ctx = {"user": user_of(request), "session": request.state.session}
    ctx.update(context or {})
    return templates.TemplateResponse(request, template, ctx, status_code=status)


async def handle_swarm_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SwarmError)
    headers = {"Retry-After": str(max(1, round(exc.retry_after)))} if isinstance(exc, RateLimited) else None
    if wants_json(request):
        return JSONResponse(exc.to_json(), status_code=exc.status, headers=headers)
    response = render(request, "errors/error.html", {"status": exc.status, "detail": exc.detail}, exc.status)
    if headers:
        response.headers.update(headers)
    return response


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}


async def handle_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    detail = exc.detail if exc.status_code != 404 else f"nothing at {request.url.path}"
    if wants_json(request):
        return JSONResponse({"error": {"code": code, "detail": detail}}, status_code=exc.status_code)
    return render(request, "errors/error.html", {"status": exc.status_code, "detail": detail}, exc.status_code)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    detail = "something went wrong on our side; it has been logged"
    if wants_json(request):
        return JSONResponse({"error": {"code": "internal", "detail": detail}}, status_code=500)
    return render(request, "errors/error.html", {"status": 500, "detail": detail}, 500)


MAX_ID = 2**31 - 1


def path_id(request: Request, name: str = "id") -> int:
    """An id from the path; ids beyond PostgreSQL's integer range cannot exist, so they are 404s."""
    from supportswarm.errors import NotFound

    value = request.path_params[name]
    if not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise NotFound(f"no object with id {value}")
    return value
