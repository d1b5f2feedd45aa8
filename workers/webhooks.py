"""Webhook jobs: the dispatcher (periodic: event log -> deliveries, and due retries) and one delivery attempt.

Retries need no scheduler of their own: a failed attempt stores when the next one is due, and the
periodic dispatcher enqueues every due delivery, so retries survive worker restarts in both modes.
"""

from __future__ import annotations

from typing import Any

from supportswarm.jobs import JobFunction, JobName, PeriodicJob
from supportswarm.resources import Resources
from supportswarm.webhooks import services

DISPATCH_EVERY_S = 5


async def dispatch_webhooks(ctx: dict[str, Any]) -> dict[str, int]:
    """Periodic (every DISPATCH_EVERY_S): new events become deliveries; due deliveries are enqueued."""
    res: Resources = ctx["resources"]
    result = await services.dispatch_events(jobs=res.jobs)
    return {"events": result.events, "deliveries": result.deliveries, "enqueued": result.enqueued}


async def deliver_webhook(ctx: dict[str, Any], delivery_id: int) -> str:
    """Job id `webhook-delivery:{id}:{due}`: one signed POST; on failure the next try is scheduled with backoff."""
    return await services.deliver(delivery_id)


FUNCTIONS: dict[str, JobFunction] = {
    JobName.DISPATCH_WEBHOOKS: dispatch_webhooks,
    JobName.DELIVER_WEBHOOK: deliver_webhook,
}

PERIODIC = [PeriodicJob(JobName.DISPATCH_WEBHOOKS, every_s=DISPATCH_EVERY_S)]
