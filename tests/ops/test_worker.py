"""The arq worker: every job registered by name, periodic jobs as crons, resources in ctx, retries."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from arq.worker import Worker
from prometheus_client import REGISTRY

from embeddings import Embedder
from supportswarm.db import parse_database_url
from supportswarm.jobs import ArqJobQueue, JobFunction, JobName, PeriodicJob, arq_queue_name, create_arq_pool
from supportswarm.resources import Resources
from supportswarm.settings import Settings
from tests.ops.conftest import RedisProcess
from workers import settings as worker_module
from workers.registry import JOB_FUNCTIONS, PERIODIC_JOBS
from workers.settings import CronTimes, WorkerSettings, backoff_s, cron_times, run_worker, worker_settings


@pytest.mark.parametrize(
    ("every_s", "expected"),
    [
        (10, CronTimes(second={0, 10, 20, 30, 40, 50})),
        (45, CronTimes(second={0, 30})),  # not a divisor of 60: rounded down to one
        (60, CronTimes(second=0, minute=set(range(60)))),
        (90, CronTimes(second=0, minute=set(range(60)))),
        (900, CronTimes(second=0, minute={0, 15, 30, 45})),
        (3600, CronTimes(second=0, minute=0, hour=set(range(24)))),
        (6 * 3600, CronTimes(second=0, minute=0, hour={0, 6, 12, 18})),
        (86400, CronTimes(second=0, minute=0, hour=0)),
    ],
)
def test_cron_times_fire_at_least_every_interval(every_s: int, expected: CronTimes) -> None:
    assert cron_times(every_s) == expected


def test_backoff_doubles_up_to_a_minute() -> None:
    assert [backoff_s(t) for t in (1, 2, 3, 4, 7, 8, 20)] == [1, 2, 4, 8, 60, 60, 60]


def test_every_registered_job_is_an_arq_function_named_by_its_job_name() -> None:
    assert {f.name for f in WorkerSettings.functions} == {str(name) for name in JOB_FUNCTIONS}
    assert set(JOB_FUNCTIONS) <= {str(name) for name in JobName}
    assert {c.name for c in WorkerSettings.cron_jobs} == {f"cron:{job.name}" for job in PERIODIC_JOBS}
    assert all(c.unique for c in WorkerSettings.cron_jobs)


def test_worker_settings_need_redis(settings: Settings) -> None:
    with pytest.raises(ValueError, match="REDIS_URL"):
        worker_settings(settings)
    assert run_worker(settings) == 2


def _count(job: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("supportswarm_jobs_total", {"job": job, "outcome": outcome}) or 0.0


class Recorder:
    """Job functions that note what they saw; `flaky` fails once as if PostgreSQL were down."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def flaky(self, ctx: dict[str, Any], *, n: int) -> int:
        res: Resources = ctx["resources"]
        self.calls.append({"job": "flaky", "n": n, "try": ctx["job_try"], "resources": res})
        if len([c for c in self.calls if c["job"] == "flaky"]) == 1:
            raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation")
        return n * 2

    async def broken(self, ctx: dict[str, Any]) -> None:
        self.calls.append({"job": "broken", "try": ctx["job_try"]})
        raise ValueError("a bug, not an outage")


# arq's Worker.close() still calls redis-py's deprecated `close()`.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")


async def _run_burst(kwargs: dict[str, Any]) -> Worker:
    worker = Worker(**kwargs, burst=True, poll_delay=0.01, handle_signals=False)
    try:
        await worker.main()
    finally:
        await worker.close()
    return worker


async def test_worker_runs_jobs_with_resources_retries_outages_and_fails_bugs(
    settings: Settings, redis_server: RedisProcess, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "backoff_s", lambda job_try: 0)  # retry at once: the test needs no wait
    settings = replace(settings, redis_url=redis_server.url)
    rec = Recorder()
    functions: dict[str, JobFunction] = {JobName.EMBED_QUESTION: rec.flaky, JobName.DETECT_EMERGENT: rec.broken}
    before = (_count("embed_question", "retry"), _count("embed_question", "ok"), _count("detect_emergent", "failed"))
    jobs = ArqJobQueue(await create_arq_pool(redis_server.url, settings.redis_namespace))  # what `serve` enqueues with
    try:
        await jobs.enqueue(JobName.EMBED_QUESTION, job_id="embed-question:7", n=21)
        await jobs.enqueue(JobName.EMBED_QUESTION, job_id="embed-question:7", n=21)  # still queued: not again
        await jobs.enqueue(JobName.DETECT_EMERGENT)
    finally:
        await jobs.close()
    worker = await _run_burst(worker_settings(settings, functions=functions, periodic_jobs=[], embedder=embedder))
    flaky = [c for c in rec.calls if c["job"] == "flaky"]
    assert [(c["n"], c["try"]) for c in flaky] == [(21, 1), (21, 2)]
    assert isinstance(flaky[0]["resources"], Resources)
    assert flaky[0]["resources"].db == parse_database_url(settings.database_url or "")
    assert [c["try"] for c in rec.calls if c["job"] == "broken"] == [1]  # a bug is not retried
    assert (worker.jobs_complete, worker.jobs_retried, worker.jobs_failed) == (1, 1, 1)
    after = (_count("embed_question", "retry"), _count("embed_question", "ok"), _count("detect_emergent", "failed"))
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]
    assert "exit_stack" not in worker.ctx  # on_shutdown closed the resources


async def test_periodic_jobs_become_unique_crons(settings: Settings, redis_server: RedisProcess) -> None:
    rec = Recorder()
    kwargs = worker_settings(replace(settings, redis_url=redis_server.url), functions={JobName.SLA_WATCH: rec.broken},
                             periodic_jobs=[PeriodicJob(JobName.SLA_WATCH, every_s=60)])
    (cron_job,) = kwargs["cron_jobs"]
    assert (cron_job.name, cron_job.unique, cron_job.second, cron_job.minute) == (
        "supportswarm:cron:sla_watch", True, 0, set(range(60)))  # the namespace: one tick per deployment
    assert kwargs["redis_settings"].port == redis_server.port


async def test_sigterm_lets_the_running_job_finish_and_leaves_the_rest_queued(
    settings: Settings, redis_server: RedisProcess, embedder: Embedder
) -> None:
    started, release, done = asyncio.Event(), asyncio.Event(), []

    async def slow(ctx: dict[str, Any], *, n: int) -> None:
        started.set()
        await release.wait()
        done.append(n)

    settings = replace(settings, redis_url=redis_server.url)
    kwargs = worker_settings(settings, functions={JobName.EMBED_QUESTION: slow}, periodic_jobs=[], embedder=embedder)
    assert kwargs["job_completion_wait"] >= 20  # what `docker stop` waits for: see compose.yaml stop_grace_period
    worker = Worker(**kwargs | {"max_jobs": 1, "poll_delay": 0.01}, handle_signals=False)
    pool = await create_arq_pool(redis_server.url, settings.redis_namespace)
    try:
        for n in (1, 2):
            await ArqJobQueue(pool).enqueue(JobName.EMBED_QUESTION, job_id=f"embed:{n}", n=n)
        run = asyncio.create_task(worker.async_run())
        await asyncio.wait_for(started.wait(), 10)
        worker.handle_sig_wait_for_completion(signal.SIGTERM)  # what SIGTERM does in `supportswarm worker`
        release.set()
        await asyncio.wait_for(asyncio.wait([run]), 10)
        await worker.close()
        assert done == [1]  # the running job finished ...
        # ... and the other waits for the next worker
        assert await pool.zcard(arq_queue_name(settings.redis_namespace)) == 1
    finally:
        await pool.aclose()
