"""The application factory: assembly only. Every route lives in its domain's routes.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypedDict

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from embeddings import Embedder
from supportswarm import openapi, ops
from supportswarm.accounts import routes as account_routes
from supportswarm.accounts.live import follow_account_changes
from supportswarm.accounts.sessions import AuthMiddleware, SessionSigner
from supportswarm.errors import SwarmError
from supportswarm.forum import routes as forum_routes
from supportswarm.httpkit import handle_http_error, handle_swarm_error, handle_unexpected
from supportswarm.jobs import JobFunction, JobQueue, PeriodicJob
from supportswarm.matching import routes as matching_routes
from supportswarm.matching import search_routes as matching_search_routes
from supportswarm.metrics import routes as metrics_routes
from supportswarm.moderation import routes as moderation_routes
from supportswarm.ratelimit import RateLimitMiddleware
from supportswarm.realtime.broker import Broker
from supportswarm.realtime.hub import Hub, ServerSendMiddleware
from supportswarm.resources import Resources, open_resources, resolve_secret_key, tune_gc
from supportswarm.settings import Settings
from supportswarm.swarm import routes as swarm_routes
from supportswarm.templating import WEB_DIR
from supportswarm.webhooks import routes as webhook_routes


class State(TypedDict):
    resources: Resources
    broker: Broker
    jobs: JobQueue
    embedder: Embedder
    hub: Hub


def create_app(
    settings: Settings | None = None,
    *,
    job_functions: Mapping[str, JobFunction] | None = None,
    embedder: Embedder | None = None,
    periodic_jobs: Sequence[PeriodicJob] = (),
) -> Starlette:
    settings = settings or Settings.from_env()
    signer = SessionSigner(resolve_secret_key(settings))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        async with open_resources(
            settings, job_functions=job_functions, embedder=embedder, periodic_jobs=periodic_jobs
        ) as res:
            app.state.resources = res
            hub = Hub()
            app.state.hub = hub  # ops.GracefulServer tells room members to reconnect before uvicorn's shutdown
            following = asyncio.create_task(follow_account_changes(res.broker, hub))
            tune_gc()  # everything imported and opened so far lives as long as the process
            try:
                yield State(resources=res, broker=res.broker, jobs=res.jobs, embedder=res.embedder, hub=hub)
            finally:
                following.cancel()
                await hub.shutdown()  # every socket gets `reconnect` + 4001 and resumes on another replica

    routes: list[Any] = [
        *ops.routes,
        *openapi.routes,
        *account_routes.routes,
        *forum_routes.routes,
        *matching_routes.routes,
        *matching_search_routes.routes,
        *metrics_routes.routes,
        *swarm_routes.routes,
        *webhook_routes.routes,
        *moderation_routes.routes,
        Mount("/static", StaticFiles(directory=str(WEB_DIR / "static")), name="static"),
    ]
    app = Starlette(
        debug=settings.debug,
        routes=routes,
        middleware=[
            Middleware(ServerSendMiddleware),
            Middleware(ops.MetricsMiddleware),
            Middleware(ops.SecurityHeadersMiddleware),
            Middleware(ops.UnavailableMiddleware),
            Middleware(AuthMiddleware, signer=signer, allowed_origins=settings.allowed_origins),
            Middleware(RateLimitMiddleware),  # inside AuthMiddleware: limits are per user when logged in
        ],
        exception_handlers={
            SwarmError: handle_swarm_error,
            HTTPException: handle_http_error,
            Exception: handle_unexpected,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.signer = signer
    return app
