"""Operations: health, readiness, Prometheus metrics, JSON logs, database-down answers, graceful shutdown.

Cross-cutting HTTP concerns live here as pure ASGI middleware (they serve every route the same way):
security headers, the request-latency histogram, and the guard that turns an unreachable database or
Redis into a 503 with a clear message instead of a 500 — the pool reconnects by itself once the
database is back, so no restart is needed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import redis.exceptions
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tortoise import connections
from tortoise.exceptions import DBConnectionError

from supportswarm import telemetry
from supportswarm.realtime.broker import BrokerUnavailable
from supportswarm.settings import Settings
from supportswarm.templating import templates

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
READY_TIMEOUT_S = 2.0
# uvicorn's websocket implementation on websockets' Sans-I/O core: the `websockets` one is built on that
# library's deprecated legacy API, and this one costs less per frame (bench/swarm_ws.py phase t: 2,820
# messages/s against 2,392 on the same machine).
WS_PROTOCOL = "websockets-sansio"
RETRY_AFTER_S = 5


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --- request latency ----------------------------------------------------------------------------------

UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})  # others count as "other"


class RouteTemplates:
    """The path template of the route that served a request. The router leaves the matched endpoint in
    the scope, not the route; an endpoint serving several routes (API and form) is told apart by matching."""

    def __init__(self, routes: list[BaseRoute]) -> None:
        self._by_endpoint: dict[Any, list[Route | WebSocketRoute]] = {}
        for route in routes:
            if isinstance(route, Route | WebSocketRoute):
                self._by_endpoint.setdefault(route.endpoint, []).append(route)
        self._mounts = [route.path for route in routes if isinstance(route, Mount)]

    def of(self, scope: Scope) -> str:
        candidates = self._by_endpoint.get(scope.get("endpoint"), [])
        if len(candidates) == 1:
            return candidates[0].path
        for route in candidates:
            if route.matches(scope)[0] is Match.FULL:
                return route.path
        return next((f"{m}/{{path}}" for m in self._mounts if scope["path"].startswith(f"{m}/")), UNMATCHED)


class MetricsMiddleware:
    """Observes every HTTP request in `telemetry.REQUEST_LATENCY`, labelled by route template so the
    label set stays bounded (`/questions/{id:int}`, never `/questions/123`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._templates: RouteTemplates | None = None

    def _route_of(self, scope: Scope) -> str:
        if self._templates is None:  # the app's routes are only known once a request carries the app
            self._templates = RouteTemplates(list(getattr(scope.get("app"), "routes", [])))
        return self._templates.of(scope)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app raises before starting a response
        start = time.perf_counter()

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            method = scope["method"] if scope["method"] in METHODS else "other"  # clients choose it: bound it
            telemetry.REQUEST_LATENCY.labels(method, self._route_of(scope), str(status)).observe(
                time.perf_counter() - start
            )


# --- database or Redis down: 503, not 500 -------------------------------------------------------------

# Errors meaning "the database cannot be reached right now": refused or missing socket (OSError, which
# includes DBConnectionError and timeouts), a connection lost mid-query, a server starting or shutting
# down, or out of connection slots. A query's own errors (syntax, constraints) are deliberately absent.
DATABASE_DOWN: tuple[type[BaseException], ...] = (
    OSError,
    DBConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
)
REDIS_DOWN: tuple[type[BaseException], ...] = (
    BrokerUnavailable,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
DATABASE_DETAIL = "the database is unreachable; retry shortly"
REDIS_DETAIL = "the realtime service is unreachable; retry shortly"


def unavailable_detail(exc: BaseException) -> str | None:
    """The 503 detail when `exc` (or what caused it) means a backing service is down; else None."""
    seen: BaseException | None = exc
    for _ in range(5):  # follow `raise ... from` a few links: services may wrap the driver's error
        if seen is None:
            return None
        if isinstance(seen, DATABASE_DOWN):
            return DATABASE_DETAIL
        if isinstance(seen, REDIS_DOWN):
            return REDIS_DETAIL
        seen = seen.__cause__
    return None


def _wants_json(scope: Scope) -> bool:
    headers = dict(scope.get("headers", []))
    return scope["path"].startswith("/api/") or b"application/json" in headers.get(b"accept", b"")


def unavailable_response(scope: Scope, detail: str) -> Response:
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    if _wants_json(scope):
        return JSONResponse({"error": {"code": "unavailable", "detail": detail}}, status_code=503, headers=headers)
    request = Request(scope)
    context = {"status": 503, "detail": detail, "user": None, "session": None}
    return templates.TemplateResponse(request, "errors/error.html", context, status_code=503, headers=headers)


class UnavailableMiddleware:
    """Answers 503 (`{"error": {"code": "unavailable", ...}}` or a readable page) when a request fails
    because PostgreSQL or Redis is unreachable, wherever it failed (authentication included). Nothing
    is cached about the failure: the next request tries again, so recovery needs no restart."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            if message["type"] in {"http.response.start", "websocket.accept", "websocket.close"}:
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception as exc:
            detail = unavailable_detail(exc)
            if detail is None or started:
                raise
            await self._answer(scope, receive, send, detail, exc)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, detail: str, exc: Exception) -> None:
        log.warning("%s %s: %s (%r)", scope.get("method", "WS"), scope["path"], detail, exc)
        if detail == DATABASE_DETAIL:
            telemetry.DB_UNAVAILABLE.inc()
        if scope["type"] == "websocket":  # before accept: 1013 "try again later"
            await send({"type": "websocket.close", "code": 1013, "reason": detail})
            return
        await unavailable_response(scope, detail)(scope, receive, send)


# --- endpoints ----------------------------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def database_ready() -> bool:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await connections.get("default").execute_query("SELECT 1")
    except Exception:
        return False
    return True


async def broker_ready(request: Request) -> bool:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            return bool(await request.state.broker.ping())
    except TimeoutError:
        return False


async def readyz(request: Request) -> Response:
    """Ready when the database and the broker (Redis, or the in-process one) answer."""
    database, broker = await asyncio.gather(database_ready(), broker_ready(request))
    checks = {"database": database, "broker": broker}
    status = 200 if all(checks.values()) else 503
    return JSONResponse({"status": "ready" if status == 200 else "unavailable", "checks": checks}, status_code=status)


async def metrics(request: Request) -> Response:
    """Prometheus exposition of this process (scrape every replica; the load balancer does not expose it)."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz, methods=["GET"], name="healthz"),
    Route("/readyz", readyz, methods=["GET"], name="readyz"),
    Route("/metrics", metrics, methods=["GET"], name="metrics"),
]


# --- logs ---------------------------------------------------------------------------------------------

# Attributes every LogRecord has; anything else was passed with `extra=` and goes into the JSON object.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime",
                                                                                      "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, `extra=` fields and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS and not k.startswith("_")})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(settings: Settings, *, level: int = logging.INFO) -> None:
    """Root logging for every command: text lines, or JSON lines with SUPPORTSWARM_JSON_LOGS=1."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if settings.json_logs else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.captureWarnings(True)  # Python warnings as log records too, so JSON logs stay one object per line


# --- graceful shutdown --------------------------------------------------------------------------------


class GracefulServer(uvicorn.Server):
    """uvicorn, but on SIGTERM the room members are told to reconnect before their sockets go.

    uvicorn's own shutdown closes every websocket with 1012 *before* the app's lifespan teardown, so
    the hub's `reconnect` frame would never arrive. Order here: stop accepting connections (the load
    balancer sends new ones elsewhere), `hub.shutdown()` (reconnect frame + 4001 to every member, who
    resume from `last_seq` on another replica), then uvicorn's shutdown: in-flight requests finish and
    the lifespan teardown drains in-process jobs.
    """

    def __init__(self, config: uvicorn.Config, *, before_shutdown: Callable[[], Any]) -> None:
        super().__init__(config)
        self._before_shutdown = before_shutdown

    async def shutdown(self, sockets: Any = None) -> None:
        for server in self.servers:
            server.close()
        try:
            await self._before_shutdown()
        except Exception:
            log.exception("closing websockets before shutdown failed")
        await super().shutdown(sockets=sockets)


def run_server(app: Any, *, host: str, port: int, settings: Settings) -> None:
    """Serve `app` until SIGINT/SIGTERM, then shut down gracefully (see GracefulServer)."""

    async def close_websockets() -> None:
        hub = getattr(app.state, "hub", None)
        if hub is not None:
            await hub.shutdown()

    config = uvicorn.Config(
        app, host=host, port=port, log_level="info", ws=WS_PROTOCOL, proxy_headers=True,
        ws_per_message_deflate=False, timeout_graceful_shutdown=20,
        # JSON logs: let uvicorn's loggers propagate to the root handler instead of its own text ones.
        log_config=None if settings.json_logs else uvicorn.config.LOGGING_CONFIG,
    )
    GracefulServer(config, before_shutdown=close_websockets).run()
