"""Background jobs by name: the services enqueue, `workers/` implements, arq or this process runs.

Services never import `workers/`; they name the job. With `REDIS_URL` the arq pool carries the
job to a `supportswarm worker`; without it the same job function runs in this process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import redis.exceptions

from supportswarm import telemetry

log = logging.getLogger(__name__)


class JobName(StrEnum):
    EMBED_QUESTION = "embed_question"
    EMBED_QUESTIONS = "embed_questions"
    REFRESH_SEARCH_TERMS = "refresh_search_terms"
    REFRESH_DENSITY = "refresh_density"
    INVITE_HELPERS = "invite_helpers"
    UPDATE_EXPERTISE = "update_expertise"
    DETECT_EMERGENT = "detect_emergent"
    METRICS_ROLLUP = "metrics_rollup"
    SLA_WATCH = "sla_watch"
    REPUBLISH = "republish"
    DISPATCH_WEBHOOKS = "dispatch_webhooks"
    DELIVER_WEBHOOK = "deliver_webhook"
    SEND_RESET_MAIL = "send_reset_mail"


JobFunction = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class PeriodicJob:
    """A job that runs every `every_s` seconds: arq cron in many-node mode, a loop of this process otherwise."""

    name: JobName
    every_s: int


class JobQueue(Protocol):
    async def enqueue(self, name: JobName, *, job_id: str | None = None, **kwargs: Any) -> None:
        """Schedules `name(ctx, **kwargs)`; a `job_id` already queued or running is not queued again."""

    async def drain(self) -> None:
        """Waits until the jobs this process started have finished (in-process queue only)."""

    async def close(self) -> None: ...


class InProcessJobQueue:
    """Runs job functions as tasks of this event loop: the single-node mode."""

    def __init__(self, functions: Mapping[str, JobFunction], ctx: dict[str, Any]) -> None:
        self.functions = functions
        self.ctx = ctx
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._counter = 0

    async def enqueue(self, name: JobName, *, job_id: str | None = None, **kwargs: Any) -> None:
        if job_id is not None and job_id in self._tasks:
            return
        telemetry.JOBS_ENQUEUED.labels(str(name)).inc()
        function = self.functions[name]
        self._counter += 1
        key = job_id or f"{name}:{self._counter}"
        task = asyncio.create_task(self._run(name, function, kwargs), name=key)
        self._tasks[key] = task
        task.add_done_callback(lambda _t: self._tasks.pop(key, None))

    async def _run(self, name: str, function: JobFunction, kwargs: dict[str, Any]) -> Any:
        start, outcome = time.perf_counter(), "failed"
        try:
            result = await function(self.ctx, **kwargs)
            outcome = "ok"
            return result
        except Exception:
            log.exception("job %s failed", name)
            return None
        finally:
            telemetry.JOBS.labels(name, outcome).inc()
            telemetry.JOB_DURATION.labels(name).observe(time.perf_counter() - start)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    def start_periodic(self, periodic: Sequence[PeriodicJob]) -> None:
        for job in periodic:
            self._loops.append(asyncio.create_task(self._every(job), name=f"periodic:{job.name}"))

    async def _every(self, job: PeriodicJob) -> None:
        while True:
            await asyncio.sleep(job.every_s)
            await self.enqueue(job.name, job_id=f"periodic:{job.name}")

    async def close(self) -> None:
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self.drain()


def arq_queue_name(namespace: str) -> str:
    """The arq queue of a deployment: SUPPORTSWARM_REDIS_NAMESPACE keeps two deployments on one Redis
    database from taking each other's jobs."""
    return f"{namespace}arq:queue"


async def create_arq_pool(redis_url: str, namespace: str) -> Any:
    """An arq pool whose jobs go to this deployment's queue."""
    from arq import create_pool
    from arq.connections import RedisSettings

    return await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=arq_queue_name(namespace))


# Redis unreachable: refused, reset, timed out (redis-py's errors, and OSError from below it).
_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class ArqJobQueue:
    """Hands jobs to arq workers through Redis: the many-node mode.

    Callers enqueue after their transaction committed, so a Redis outage must not fail them (issue 6,
    degradation): jobs that cannot be handed over wait, in order, in a bounded in-memory backlog that a
    background task hands to Redis once it answers again.
    """

    MAX_PENDING = 10_000

    def __init__(self, pool: Any, *, namespace: str = "") -> None:
        self.pool = pool
        # arq keys a job by its id alone (`arq:job:<id>`), whatever the queue: ids carry the namespace too,
        # or one deployment's queued job would stop the other's from being enqueued.
        self.namespace = namespace
        self._pending: deque[tuple[str, str | None, dict[str, Any]]] = deque(maxlen=self.MAX_PENDING)
        self._flusher: asyncio.Task[None] | None = None

    async def enqueue(self, name: JobName, *, job_id: str | None = None, **kwargs: Any) -> None:
        telemetry.JOBS_ENQUEUED.labels(str(name)).inc()
        if job_id is not None:
            job_id = self.namespace + job_id
        if not self._pending:  # else keep the order: behind the jobs already waiting
            try:
                await self.pool.enqueue_job(str(name), _job_id=job_id, **kwargs)
                return
            except _REDIS_DOWN as exc:
                log.warning("redis unreachable (%r); job %s waits in memory until it is back", exc, name)
        self._pending.append((str(name), job_id, kwargs))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="arq-pending-jobs")

    async def _flush(self) -> None:
        delay = 0.1
        while self._pending:
            name, job_id, kwargs = self._pending[0]
            try:
                await self.pool.enqueue_job(name, _job_id=job_id, **kwargs)
            except _REDIS_DOWN:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._pending.popleft()
            delay = 0.1

    async def drain(self) -> None:
        """Waits until every job waiting for Redis has been handed over (the workers run them)."""
        if self._flusher is not None:
            await asyncio.wait([self._flusher])

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.wait([self._flusher])
        if self._pending:
            log.error("redis still unreachable: %d queued jobs were not handed over", len(self._pending))
        await self.pool.aclose()
