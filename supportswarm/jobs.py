"""Background jobs by name: the services enqueue, `workers/` implements, arq or this process runs.

Services never import `workers/`; they name the job. With `REDIS_URL` the arq pool carries the
job to a `supportswarm worker`; without it the same job function runs in this process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from typing import Any, Protocol

log = logging.getLogger(__name__)


class JobName(StrEnum):
    EMBED_QUESTION = "embed_question"
    EMBED_QUESTIONS = "embed_questions"
    INVITE_HELPERS = "invite_helpers"
    UPDATE_EXPERTISE = "update_expertise"
    DETECT_EMERGENT = "detect_emergent"
    SLA_WATCH = "sla_watch"
    REPUBLISH = "republish"


JobFunction = Callable[..., Awaitable[Any]]


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
        self._counter = 0

    async def enqueue(self, name: JobName, *, job_id: str | None = None, **kwargs: Any) -> None:
        if job_id is not None and job_id in self._tasks:
            return
        function = self.functions[name]
        self._counter += 1
        key = job_id or f"{name}:{self._counter}"
        task = asyncio.create_task(self._run(name, function, kwargs), name=key)
        self._tasks[key] = task
        task.add_done_callback(lambda _t: self._tasks.pop(key, None))

    async def _run(self, name: str, function: JobFunction, kwargs: dict[str, Any]) -> Any:
        try:
            return await function(self.ctx, **kwargs)
        except Exception:
            log.exception("job %s failed", name)
            return None

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def close(self) -> None:
        await self.drain()


class ArqJobQueue:
    """Hands jobs to arq workers through Redis: the many-node mode."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def enqueue(self, name: JobName, *, job_id: str | None = None, **kwargs: Any) -> None:
        await self.pool.enqueue_job(str(name), _job_id=job_id, **kwargs)

    async def drain(self) -> None:
        return None

    async def close(self) -> None:
        await self.pool.aclose()
