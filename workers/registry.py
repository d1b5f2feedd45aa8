"""Every job function by name: arq's WorkerSettings and the in-process queue both read this table."""

from __future__ import annotations

from supportswarm.jobs import JobFunction, JobName, PeriodicJob
from workers import accounts, matching, metrics, swarm, webhooks

JOB_FUNCTIONS: dict[str, JobFunction] = {
    **accounts.FUNCTIONS,
    **matching.FUNCTIONS,
    **metrics.FUNCTIONS,
    **swarm.FUNCTIONS,
    **webhooks.FUNCTIONS,
}

# Run every `every_s` seconds: arq crons in the worker (workers/settings.py), a loop of `serve` without Redis.
PERIODIC_JOBS: list[PeriodicJob] = [
    *matching.PERIODIC,
    PeriodicJob(JobName.SLA_WATCH, every_s=60),
    *metrics.PERIODIC,
    *webhooks.PERIODIC,
]
