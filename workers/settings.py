"""arq worker settings: every job of `workers/registry.py`, its periodic jobs as crons, and the resources.

`supportswarm worker` runs `run_worker(settings)`. Each job function receives `ctx["resources"]`, opened
by `open_resources` at startup exactly as in `serve` (STYLE.md C6), so the same function runs here and
in-process. Every job is wrapped once (`resilient`) to retry transient failures — PostgreSQL or Redis
unreachable — with `Retry(defer=...)` and exponential backoff, and to count runs in Prometheus; any
other exception fails the job. arq executes at least once, so every job is idempotent, and jobs that
must run once carry a job id (arq's uniqueness holds while a job id is queued or running).

arq reads settings from a class; `WorkerSettings` holds what is fixed, `worker_settings(settings)` adds
what depends on `Settings` (Redis, resources), so configuration stays explicit.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any, NamedTuple, cast

from arq import cron, func
from arq.connections import RedisSettings
from arq.cron import CronJob
from arq.typing import OptionType, WorkerCoroutine
from arq.worker import Function, Retry, Worker, create_worker

from embeddings import Embedder
from supportswarm import telemetry
from supportswarm.jobs import JobFunction, PeriodicJob, arq_queue_name
from supportswarm.ops import unavailable_detail
from supportswarm.resources import Resources, open_resources
from supportswarm.settings import Settings
from workers.registry import JOB_FUNCTIONS, PERIODIC_JOBS

log = logging.getLogger(__name__)

MAX_TRIES = 8
"""Tries per job; with the backoff below, transient failures are retried for about three minutes."""
MAX_BACKOFF_S = 60


def backoff_s(job_try: int) -> int:
    """Seconds before try `job_try + 1`: 1, 2, 4, ... capped at a minute."""
    return int(min(2 ** max(job_try - 1, 0), MAX_BACKOFF_S))


def resilient(name: str, function: JobFunction) -> WorkerCoroutine:
    """`function` with retries for transient errors and Prometheus counts (jobs, outcomes, durations)."""

    @functools.wraps(function)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        outcome = "failed"
        try:
            result = await function(ctx, *args, **kwargs)
            outcome = "ok"
            return result
        except Retry:
            outcome = "retry"
            raise
        except Exception as exc:
            if unavailable_detail(exc) is None:
                raise
            outcome = "retry"
            defer = backoff_s(int(ctx.get("job_try", 1)))
            log.warning("job %s: %r; retrying in %ss", name, exc, defer)
            raise Retry(defer=defer) from exc
        finally:
            telemetry.JOBS.labels(name, outcome).inc()
            telemetry.JOB_DURATION.labels(name).observe(time.perf_counter() - start)

    return cast(WorkerCoroutine, run)


def arq_functions(functions: Mapping[str, JobFunction]) -> list[Function]:
    """arq functions named by their JobName string, which is what `ArqJobQueue.enqueue` sends."""
    return [func(resilient(str(name), fn), name=str(name), max_tries=MAX_TRIES) for name, fn in functions.items()]


_SECONDS_STEPS = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)  # the divisors of 60
_HOUR_STEPS = (1, 2, 3, 4, 6, 8, 12)  # the divisors of 24


class CronTimes(NamedTuple):
    """The `second`, `minute` and `hour` fields of an arq cron (None: every value)."""

    second: OptionType
    minute: OptionType = None
    hour: OptionType = None


def _every(step: int, steps: tuple[int, ...], size: int) -> set[int]:
    """0, k, 2k, ... below `size`, with k the largest of `steps` not above `step`."""
    return set(range(0, size, max(s for s in steps if s <= max(step, 1))))


def cron_times(every_s: int) -> CronTimes:
    """Cron fields firing every `every_s` seconds. Intervals a cron cannot express are rounded down to
    one it can (90 s runs every minute): periodic jobs are idempotent, so running early is harmless."""
    if every_s < 60:
        return CronTimes(second=_every(every_s, _SECONDS_STEPS, 60))
    if every_s < 3600:
        return CronTimes(second=0, minute=_every(every_s // 60, _SECONDS_STEPS, 60))
    if every_s < 86400:
        return CronTimes(second=0, minute=0, hour=_every(every_s // 3600, _HOUR_STEPS, 24))
    return CronTimes(second=0, minute=0, hour=0)


def arq_crons(periodic: Sequence[PeriodicJob], functions: Mapping[str, JobFunction],
              namespace: str = "") -> list[CronJob]:
    """One arq cron per periodic job; `unique` gives each tick one job id, so N workers run it once. The id
    is the cron's name and the tick: the namespace in the name keeps another deployment's tick from taking it."""
    crons = []
    for job in periodic:
        times = cron_times(job.every_s)
        crons.append(cron(resilient(str(job.name), functions[job.name]), name=f"{namespace}cron:{job.name}",
                          unique=True, keep_result=min(job.every_s, 3600), second=times.second,
                          minute=times.minute, hour=times.hour))
    return crons


class WorkerSettings:
    """What does not depend on the environment; `worker_settings()` adds Redis and the resources."""

    functions = arq_functions(JOB_FUNCTIONS)
    cron_jobs = arq_crons(PERIODIC_JOBS, JOB_FUNCTIONS)
    max_tries = MAX_TRIES
    keep_result = 0  # like the in-process queue: a job id is unique while queued or running
    job_timeout = 600
    max_jobs = 10
    job_completion_wait = 25  # on SIGTERM: stop taking jobs, let running ones finish; the rest are retried
    health_check_interval = 30


async def _warm_up(embedder: Embedder) -> None:
    """A worker exists to embed: load the model at start, in a thread, so the first job does not wait ~5 s."""
    try:
        await asyncio.to_thread(lambda: embedder.dim)
    except Exception:  # the jobs that need the model will fail and be reported; the others still run
        log.exception("could not load the embedding model")


def _lifecycle(settings: Settings, embedder: Embedder | None) -> tuple[Any, Any]:
    # arq runs on_startup and on_shutdown in different tasks, but the ORM context must be left in the
    # context it was entered in: both run in one `contextvars.Context` kept here. Jobs, in tasks of their
    # own, reach the ORM through its global fallback, exactly as request handlers do under `serve`.
    context = contextvars.copy_context()

    async def startup(ctx: dict[str, Any]) -> None:
        stack = AsyncExitStack()
        ctx["exit_stack"] = stack
        entering = stack.enter_async_context(open_resources(settings, embedder=embedder))
        res: Resources = await asyncio.create_task(entering, context=context)
        ctx["resources"] = res
        ctx["warm_up"] = asyncio.create_task(_warm_up(res.embedder))

    async def shutdown(ctx: dict[str, Any]) -> None:
        warm_up: asyncio.Task[None] | None = ctx.pop("warm_up", None)
        if warm_up is not None:
            await asyncio.wait([warm_up])
        stack: AsyncExitStack | None = ctx.pop("exit_stack", None)
        if stack is not None:
            await asyncio.create_task(stack.aclose(), context=context)

    return startup, shutdown


def worker_settings(
    settings: Settings,
    *,
    functions: Mapping[str, JobFunction] | None = None,
    periodic_jobs: Sequence[PeriodicJob] | None = None,
    embedder: Embedder | None = None,
) -> dict[str, Any]:
    """Keyword arguments of arq's `Worker` for `settings` (tests pass their own functions or embedder)."""
    if not settings.redis_url:
        raise ValueError("an arq worker needs REDIS_URL")
    startup, shutdown = _lifecycle(settings, embedder)
    kwargs = {k: v for k, v in vars(WorkerSettings).items() if not k.startswith("_")}
    chosen = JOB_FUNCTIONS if functions is None else functions
    if functions is not None:
        kwargs["functions"] = arq_functions(chosen)
    kwargs["cron_jobs"] = arq_crons(PERIODIC_JOBS if periodic_jobs is None else periodic_jobs, chosen,
                                    namespace=settings.redis_namespace)
    return kwargs | {
        "queue_name": arq_queue_name(settings.redis_namespace),
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "on_startup": startup,
        "on_shutdown": shutdown,
    }


def run_worker(settings: Settings, *, metrics_port: int | None = None) -> int:
    """Run one worker until SIGINT/SIGTERM; returns the exit status."""
    if not settings.redis_url:
        print("error: `supportswarm worker` needs REDIS_URL; without it `serve` runs the jobs itself",
              file=sys.stderr)
        return 2
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)
    asyncio.set_event_loop(asyncio.new_event_loop())  # arq's Worker takes the current loop
    worker: Worker = create_worker(worker_settings(settings))
    worker.run()
    return 0
