"""Matching jobs: embed one question (on ask and edit), embed a batch (import, reindex), and the periodic
recount of full-text word frequencies.

Both call `matching.services.embed_questions`; both are idempotent (the same text gives the same vector,
and a vector computed from text that was edited meanwhile is not written).
"""

from __future__ import annotations

from typing import Any

from supportswarm.jobs import JobFunction, JobName, PeriodicJob
from supportswarm.matching import search, services
from supportswarm.resources import Resources


def _res(ctx: dict[str, Any]) -> Resources:
    res: Resources = ctx["resources"]
    return res


async def embed_question(ctx: dict[str, Any], question_id: int) -> int:
    """Queued by forum.services on create and edit (job id `embed-question:{id}:{updated_at}`)."""
    return await services.embed_questions([question_id], embedder=_res(ctx).embedder)


async def embed_questions(ctx: dict[str, Any], question_ids: list[int]) -> int:
    """A batch from `supportswarm import` or `reindex` when REDIS_URL sends the work to arq workers."""
    return await services.embed_questions(question_ids, embedder=_res(ctx).embedder)


async def refresh_search_terms(ctx: dict[str, Any]) -> None:
    """Periodic: recounts the lexeme document frequencies the full-text ranking weighs words by."""
    await search.refresh_search_terms()


FUNCTIONS: dict[str, JobFunction] = {
    JobName.EMBED_QUESTION: embed_question,
    JobName.EMBED_QUESTIONS: embed_questions,
    JobName.REFRESH_SEARCH_TERMS: refresh_search_terms,
}

# Ten minutes: a question asked since the last recount is only "rarer" than it should be for that long.
PERIODIC = [PeriodicJob(JobName.REFRESH_SEARCH_TERMS, every_s=600)]
