"""One async context manager that opens everything a process needs: web, worker, CLI and tests."""

from __future__ import annotations

import asyncio
import gc
import secrets
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tortoise.context import TortoiseContext

from embeddings import Embedder, load_embedder
from supportswarm import telemetry
from supportswarm.db import (
    ConnectionParams,
    EmbeddedPostgres,
    ensure_database,
    migrate,
    parse_database_url,
    tortoise_config,
)
from supportswarm.errors import ConfigurationError
from supportswarm.jobs import ArqJobQueue, InProcessJobQueue, JobFunction, JobQueue, PeriodicJob, create_arq_pool
from supportswarm.realtime.broker import Broker
from supportswarm.realtime.memory import MemoryBroker
from supportswarm.realtime.redis import RedisBroker
from supportswarm.settings import Settings

# Collect the young generation every 10,000 net allocations instead of 700, and the whole heap after 100 middle
# collections instead of 10 (CPython's defaults: 700, 10, 10). Why: a young collection that runs while requests
# are in flight promotes their objects, and those promotions are what lead to full collections. A full
# collection traverses every connection's objects, which freezing cannot exempt (1,000 connections: 0.1-0.3 s
# of stalled event loop every 20-30 s under load, the rooms' p99; bench/README.md, "Swarm rooms"). With these
# thresholds no full collection came in the load phases of that benchmark, and a young one took under 1 ms.
GC_THRESHOLDS = (10_000, 10, 100)


def tune_gc() -> None:
    """Once the web process has started: fewer full collections (GC_THRESHOLDS), and none of them traversing
    the start-up heap (freeze_heap)."""
    gc.set_threshold(*GC_THRESHOLDS)
    freeze_heap()


def freeze_heap() -> None:
    """Collect garbage, then exempt every object alive now from future collections (gc.freeze).

    Why: each full collection of CPython's cycle collector traverses every tracked object, and a web process
    holds hundreds of thousands of long-lived ones (modules, classes, ORM and template metadata, the model).
    Under load those full collections stalled the event loop for ~0.3 s, the swarm rooms' p99; frozen objects
    are never traversed again. Call it when what is alive is the process's lasting state (after start-up,
    after loading the model): a frozen object that later becomes cyclic garbage is never freed, so freezing
    now and then would leak, while freezing at those moments keeps at most what was in flight then.
    """
    gc.collect()
    gc.freeze()


class LazyEmbedder:
    """Loads the model on first use, so commands that never embed never pay for it."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._model: Embedder | None = None
        self._lock = threading.Lock()

    def _load(self) -> Embedder:
        with self._lock:
            if self._model is None:
                self._model = load_embedder(self._settings.model_path, threads=self._settings.embed_threads)
                telemetry.EMBED_MODEL_LOADED.set(1)
                freeze_heap()  # the model's many objects live as long as the process
        return self._model

    @property
    def name(self) -> str:
        return self._load().name

    @property
    def dim(self) -> int:
        return self._load().dim

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        model = self._load()
        with telemetry.EMBED_SECONDS.time():
            vectors = model.encode(texts, batch_size=batch_size)
        telemetry.EMBEDDED_TEXTS.inc(len(texts))
        return vectors


@dataclass
class Resources:
    settings: Settings
    db: ConnectionParams
    broker: Broker
    jobs: JobQueue
    embedder: Embedder
    secret_key: str = field(repr=False)


def resolve_secret_key(settings: Settings) -> str:
    """SECRET_KEY, or on a single embedded node a random key kept in the data folder."""
    if settings.secret_key:
        return settings.secret_key
    if not settings.embedded or settings.redis_url:
        raise ConfigurationError("SECRET_KEY must be set when DATABASE_URL or REDIS_URL is set")
    path = settings.data_dir / "secret_key"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


async def open_database(settings: Settings, *, run_migrations: bool) -> ConnectionParams:
    if settings.database_url:
        params = parse_database_url(settings.database_url)
    else:
        params = await asyncio.to_thread(EmbeddedPostgres(settings.data_dir).start)
        await ensure_database(params)
    if run_migrations:
        await migrate(params)
    return params


@asynccontextmanager
async def open_resources(
    settings: Settings,
    *,
    job_functions: Mapping[str, JobFunction] | None = None,
    embedder: Embedder | None = None,
    run_migrations: bool = True,
    pool_size: int = 10,
    periodic_jobs: Sequence[PeriodicJob] = (),
) -> AsyncIterator[Resources]:
    """Database (migrated), ORM, broker, job queue and embedder, closed in reverse order.

    `job_functions` are the functions of `workers/`: without REDIS_URL they run in this process, and so
    do `periodic_jobs` (only `serve` passes those; with REDIS_URL the arq worker's cron runs them).
    """
    secret_key = resolve_secret_key(settings)
    params = await open_database(settings, run_migrations=run_migrations)
    async with TortoiseContext() as orm:
        await orm.init(config=tortoise_config(params, pool_size=pool_size), _enable_global_fallback=True)
        broker: Broker = (
            RedisBroker.from_url(settings.redis_url, namespace=settings.redis_namespace)
            if settings.redis_url else MemoryBroker()
        )
        ctx: dict[str, Any] = {}
        jobs = await _open_jobs(settings, job_functions or {}, ctx)
        if isinstance(jobs, InProcessJobQueue):
            jobs.start_periodic(periodic_jobs)
        res = Resources(settings, params, broker, jobs, embedder or LazyEmbedder(settings), secret_key)
        ctx["resources"] = res
        try:
            yield res
        finally:
            await jobs.close()
            await broker.close()


async def _open_jobs(settings: Settings, functions: Mapping[str, JobFunction], ctx: dict[str, Any]) -> JobQueue:
    if settings.redis_url:
        pool = await create_arq_pool(settings.redis_url, settings.redis_namespace)
        return ArqJobQueue(pool, namespace=settings.redis_namespace)
    return InProcessJobQueue(functions, ctx)
