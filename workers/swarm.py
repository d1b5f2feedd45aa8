"""Swarm jobs: invitations, the SLA watch (an arq cron every minute), republishing, expertise profiles.

Each pulls its resources from `ctx["resources"]` and calls one service; each is idempotent.
"""

from __future__ import annotations

from typing import Any

from supportswarm.jobs import JobFunction, JobName
from supportswarm.resources import Resources
from supportswarm.swarm import expertise, services


def _res(ctx: dict[str, Any]) -> Resources:
    res: Resources = ctx["resources"]
    return res


async def invite_helpers(ctx: dict[str, Any], swarm_id: int, rounds: int = 1) -> list[int]:
    """Job id `invite:{swarm_id}` (and `invite:{swarm_id}:sla` for the SLA watch's wider round)."""
    res = _res(ctx)
    return await expertise.invite_helpers(swarm_id, embedder=res.embedder, broker=res.broker,
                                          expert_reputation=res.settings.expert_reputation, rounds=rounds)


async def sla_watch(ctx: dict[str, Any]) -> dict[str, list[int]]:
    """Schedule every minute: `cron(sla_watch, minute=set(range(60)), unique=True)` in WorkerSettings."""
    res = _res(ctx)
    return await services.watch_sla(sla_minutes=res.settings.sla_minutes, broker=res.broker, jobs=res.jobs)


async def republish(ctx: dict[str, Any], message_id: int) -> bool:
    """Job id `republish:{message_id}`: a notification that failed after commit. Raises while the broker is
    down, so arq retries; clients de-duplicate by seq."""
    return await services.republish_message(message_id, broker=_res(ctx).broker)


async def update_expertise(ctx: dict[str, Any], user_ids: list[int] | None = None) -> int:
    """Rebuild helper profiles (all helpers when `user_ids` is None)."""
    res = _res(ctx)
    return await expertise.rebuild_expertise(user_ids, embedder=res.embedder,
                                             expert_reputation=res.settings.expert_reputation)


FUNCTIONS: dict[str, JobFunction] = {
    JobName.INVITE_HELPERS: invite_helpers,
    JobName.SLA_WATCH: sla_watch,
    JobName.REPUBLISH: republish,
    JobName.UPDATE_EXPERTISE: update_expertise,
}
