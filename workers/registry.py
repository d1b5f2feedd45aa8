"""Every job function by name: arq's WorkerSettings and the in-process queue both read this table."""

from __future__ import annotations

from supportswarm.jobs import JobFunction

JOB_FUNCTIONS: dict[str, JobFunction] = {}
