"""Two deployments on one Redis database (distinct SUPPORTSWARM_REDIS_NAMESPACE) never run each other's jobs."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest
from arq.worker import Worker

from embeddings import Embedder
from supportswarm.jobs import ArqJobQueue, JobFunction, JobName, arq_queue_name, create_arq_pool
from supportswarm.settings import Settings
from tests.conftest import REDIS_URL
from workers.settings import worker_settings

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")  # arq's Worker.close


async def test_namespaces_keep_queues_and_job_ids_apart(settings: Settings, embedder: Embedder) -> None:
    ran: list[str] = []

    async def record(ctx: dict[str, Any], *, who: str) -> None:
        ran.append(who)

    spaces = [f"test-{uuid.uuid4().hex[:8]}:" for _ in range(2)]
    pools = [await create_arq_pool(REDIS_URL, ns) for ns in spaces]
    try:
        for ns, pool in zip(spaces, pools, strict=True):  # the same job id in both deployments
            await ArqJobQueue(pool, namespace=ns).enqueue(JobName.EMBED_QUESTION, job_id="embed-question:1", who=ns)
        assert [await pool.zcard(arq_queue_name(ns)) for ns, pool in zip(spaces, pools, strict=True)] == [1, 1]
        functions: dict[str, JobFunction] = {JobName.EMBED_QUESTION: record}
        first = replace(settings, redis_url=REDIS_URL, redis_namespace=spaces[0])
        kwargs = worker_settings(first, functions=functions, periodic_jobs=[], embedder=embedder)
        assert all(c.name.startswith(spaces[0]) for c in worker_settings(first, embedder=embedder)["cron_jobs"])
        worker = Worker(**kwargs, burst=True, poll_delay=0.01, handle_signals=False)
        try:
            await worker.main()
        finally:
            await worker.close()
        assert ran == [spaces[0]]  # the first deployment's worker ran its own job only ...
        assert await pools[1].zcard(arq_queue_name(spaces[1])) == 1  # ... the second's still waits for its workers
    finally:
        for ns, pool in zip(spaces, pools, strict=True):
            await pool.delete(arq_queue_name(ns), f"arq:job:{ns}embed-question:1")
            await pool.aclose()
