"""Matching jobs: embed one question (on ask and edit), embed a batch (import, reindex), and the periodic
recounts: full-text word frequencies and question densities (the vote's hubness correction).

Both call `matching.services.embed_questions`; both are idempotent (the same text gives the same vector,
and a vector computed from text that was edited meanwhile is not written).
"""

from __future__ import annotations

from typing import Any

from supportswarm.jobs import JobFunction, JobName, PeriodicJob
from supportswarm.matching import density, search, services
from supportswarm.resources import Resources


def _res(ctx: dict[str, Any]) -> Resources:
    res: Resources = ctx["resources"]
    return res


async def embed_question(ctx: dict[str, Any], question_id: int) -> int:
    """Queued by forum.services on create and edit (job id `embed-question:{id}:{updated_at}`); the
    question's neighbours get their density refreshed too."""
    return await services.embed_questions([question_id], embedder=_res(ctx).embedder, neighbours=True)


async def embed_questions(ctx: dict[str, Any], question_ids: list[int]) -> int:
    """A batch from `supportswarm import` or `reindex` when REDIS_URL sends the work to arq workers (the
    command's closing density pass covers the neighbours)."""
    return await services.embed_questions(question_ids, embedder=_res(ctx).embedder)


async def refresh_search_terms(ctx: dict[str, Any]) -> None:
    """Periodic: recounts the lexeme document frequencies the full-text ranking weighs words by."""
    await search.refresh_search_terms()


async def refresh_density(ctx: dict[str, Any]) -> int:
    """Periodic: recomputes every question's density (matching/density.py says why daily is enough)."""
    return await density.refresh_density(model=_res(ctx).embedder.name)


FUNCTIONS: dict[str, JobFunction] = {
    JobName.EMBED_QUESTION: embed_question,
    JobName.EMBED_QUESTIONS: embed_questions,
    JobName.REFRESH_SEARCH_TERMS: refresh_search_terms,
    JobName.REFRESH_DENSITY: refresh_density,
}

# Ten minutes: a question asked since the last recount is only "rarer" than it should be for that long.
PERIODIC = [PeriodicJob(JobName.REFRESH_SEARCH_TERMS, every_s=600), PeriodicJob(JobName.REFRESH_DENSITY, every_s=86400)]
