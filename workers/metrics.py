"""Metrics jobs: folding the event log into the facts tables, and emergent-problem detection.

Both are periodic (`PERIODIC` below: arq crons in the worker, loops of `serve` without Redis) and
idempotent, and each takes an advisory lock, so overlapping runs on several workers are harmless.
"""

from __future__ import annotations

from typing import Any

from supportswarm.jobs import JobFunction, JobName, PeriodicJob
from supportswarm.metrics import emergent, rollup
from supportswarm.resources import Resources


async def metrics_rollup(ctx: dict[str, Any]) -> dict[str, int | bool]:
    """Job id `metrics-rollup` when a read asks for it; also every minute."""
    result = await rollup.rollup()
    return {"ran": result.ran, "questions": result.questions, "swarms": result.swarms}


async def detect_emergent(ctx: dict[str, Any]) -> list[int]:
    """Every two minutes: clusters of similar new questions. Returns the clusters created or grown."""
    res: Resources = ctx["resources"]
    return await emergent.detect(config=emergent.EmergentConfig(), broker=res.broker, jobs=res.jobs)


FUNCTIONS: dict[str, JobFunction] = {
    JobName.METRICS_ROLLUP: metrics_rollup,
    JobName.DETECT_EMERGENT: detect_emergent,
}

PERIODIC: list[PeriodicJob] = [
    PeriodicJob(JobName.METRICS_ROLLUP, every_s=60),
    PeriodicJob(JobName.DETECT_EMERGENT, every_s=120),
]
