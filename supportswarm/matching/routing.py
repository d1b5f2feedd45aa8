"""Route on ask: offer the existing answer that solves the question, or post it to the forum or a swarm.

    confident match (decision "answer")  -> a Suggestion is shown, nothing is posted yet;
        "this solved my problem"         -> accepted: a deflection, the answer is reused;
        "not my problem"                 -> rejected: the question is posted and routed as below.
    no confident match (or `force`)      -> posted; a swarm opens when nothing in the forum is even
                                            related (top cosine < RELATED_THRESHOLD) or a tag is urgent,
                                            else it stays in the forum.

Every outcome is in the event log (SUGGESTION_SHOWN / _ACCEPTED / _REJECTED, ANSWER_REUSED): the
deflection rate and knowledge reuse of the metrics are computed from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.transactions import in_transaction

from embeddings import Embedder
from supportswarm.accounts import permissions
from supportswarm.accounts.models import User
from supportswarm.errors import Conflict, InvalidInput, NotFound
from supportswarm.forum import services as forum
from supportswarm.forum.models import Answer, Question
from supportswarm.jobs import JobName, JobQueue
from supportswarm.matching import services
from supportswarm.matching.models import Suggestion, SuggestionOutcome
from supportswarm.matching.search import question_text
from supportswarm.metrics.events import EventKind, record_event
from supportswarm.realtime.broker import Broker
from supportswarm.swarm import services as swarm_services
from supportswarm.swarm.models import Swarm


@dataclass(frozen=True, kw_only=True)
class Draft:
    title: str
    body: str
    tags: list[str]


@dataclass(frozen=True, kw_only=True)
class AskPolicy:
    """The settings routing depends on, passed in plain (Settings stays out of services)."""

    answer_threshold: float | None = None
    urgent_tags: Sequence[str] = ()


@dataclass(frozen=True, kw_only=True)
class Routed:
    """What happened to an ask: `suggestion` set (nothing posted) or `question` set (posted)."""

    route: dict[str, Any]
    suggestion: Suggestion | None = None
    question: Question | None = None


def check_draft(title: object, body: object, tags: list[str]) -> Draft:
    return Draft(title=_encodable(forum.check_title(title), "title"),
                 body=_encodable(forum.check_body(body), "body"), tags=tags)


def _encodable(value: str, field: str) -> str:
    # JSON may carry lone surrogates ("\ud800"), which PostgreSQL cannot store: a 400, not a 500.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{field} is not valid Unicode text", field=field) from None
    return value


def now() -> datetime:
    return datetime.now(UTC)


async def ask_question(
    user: User, draft: Draft, *, force: bool = False, policy: AskPolicy, embedder: Embedder, broker: Broker,
    jobs: JobQueue,
) -> Routed:
    """Route a customer's new question (POST /api/v1/questions and the ask page)."""
    similar = await services.find_similar(question_text(draft.title, draft.body), limit=1, embedder=embedder,
                                          answer_threshold=policy.answer_threshold)
    best = similar.best
    if not force and similar.decision == "answer" and best is not None and best.accepted_answer_id is not None:
        suggestion = await _show_suggestion(user, draft, best.id, best.accepted_answer_id, similar.confidence)
        return Routed(route=suggestion_route(suggestion), suggestion=suggestion)
    question = await _post(user, draft, jobs=jobs)
    route = await _route_posted(question, user, draft.tags, similar.similarity, policy=policy, broker=broker,
                                jobs=jobs)
    return Routed(route=route, question=question)


def suggestion_route(s: Suggestion) -> dict[str, Any]:
    return {"type": "suggested_answer", "suggestion_id": s.id,
            "question_id": s.suggested_question_id,
            "answer_id": s.suggested_answer_id, "score": round(s.score, 4)}


async def _show_suggestion(user: User, draft: Draft, question_id: int, answer_id: int, score: float) -> Suggestion:
    async with in_transaction():
        suggestion = await Suggestion.create(
            asker=user, draft_title=draft.title, draft_body=draft.body, draft_tags=" ".join(draft.tags),
            suggested_question_id=question_id, suggested_answer_id=answer_id, score=score,
        )
        await record_event(EventKind.SUGGESTION_SHOWN, actor_id=user.id, question_id=question_id,
                           answer_id=answer_id, suggestion_id=suggestion.id, score=round(score, 4))
    return suggestion


async def _post(user: User, draft: Draft, *, jobs: JobQueue) -> Question:
    return await forum.create_question(user, draft.title, draft.body, draft.tags, jobs=jobs)


async def _route_posted(
    question: Question, user: User, tags: Sequence[str], similarity: float, *, policy: AskPolicy, broker: Broker,
    jobs: JobQueue,
) -> dict[str, Any]:
    """Forum, or a swarm room when nothing related exists or the question is urgent.

    The swarm hook (issue 3 -> swarm issue): `open_swarm` opens the room, invites helpers and tells
    every inbox; routing only decides *whether* and says *why* (`reason`).
    """
    reason = _swarm_reason(tags, similarity, policy.urgent_tags)
    if reason is None:
        return {"type": "forum"}
    swarm = await swarm_services.open_swarm(question.id, opened_by=user, reason=reason, broker=broker, jobs=jobs)
    return _swarm_route(swarm)


def _swarm_route(swarm: Swarm) -> dict[str, Any]:
    return {"type": "swarm", "swarm_id": swarm.id, "ws_url": f"/ws/swarms/{swarm.id}", "reason": swarm.reason}


async def _existing_route(question_id: int) -> dict[str, Any]:
    swarm = await swarm_services.swarm_for_question(question_id)
    return {"type": "forum"} if swarm is None else _swarm_route(swarm)


def _swarm_reason(tags: Sequence[str], similarity: float, urgent_tags: Sequence[str]) -> str | None:
    if set(tags) & set(urgent_tags):
        return "urgent"
    if similarity < services.RELATED_THRESHOLD:
        return "no_match"
    return None


# --- the customer's verdict ------------------------------------------------------------------------------


async def get_suggestion(suggestion_id: int, user: User) -> Suggestion:
    suggestion = await Suggestion.get_or_none(id=suggestion_id)
    if suggestion is None:
        raise NotFound(f"no suggestion with id {suggestion_id}")
    permissions.ensure(permissions.can_decide_suggestion(user, suggestion.asker_id),
                       "only the customer who asked can answer this suggestion")
    return suggestion


async def _decide(suggestion: Suggestion, outcome: SuggestionOutcome) -> None:
    """Shown -> accepted or rejected, once: a second click (or a race of two) changes nothing."""
    updated = await Suggestion.filter(id=suggestion.id, outcome=SuggestionOutcome.SHOWN).update(
        outcome=outcome, decided_at=now()
    )
    if not updated:
        raise Conflict("this suggestion was already answered", code="already_decided")


async def accept_suggestion(suggestion_id: int, user: User) -> Suggestion:
    """'This solved my problem': a deflection. The reused answer is credited in the event log."""
    suggestion = await get_suggestion(suggestion_id, user)
    if suggestion.outcome == SuggestionOutcome.ACCEPTED:
        return suggestion  # a retried click
    question_id = suggestion.suggested_question_id
    answer_id = suggestion.suggested_answer_id
    async with in_transaction():
        await _decide(suggestion, SuggestionOutcome.ACCEPTED)
        for kind in (EventKind.SUGGESTION_ACCEPTED, EventKind.ANSWER_REUSED):
            await record_event(kind, actor_id=user.id, question_id=question_id, answer_id=answer_id,
                               suggestion_id=suggestion.id)
    return await Suggestion.get(id=suggestion.id)


async def reject_suggestion(
    suggestion_id: int, user: User, *, policy: AskPolicy, broker: Broker, jobs: JobQueue,
) -> Routed:
    """'Not my problem': the draft is posted as a question (in the same transaction as the verdict) and
    routed like an ask without a confident match."""
    suggestion = await get_suggestion(suggestion_id, user)
    if suggestion.outcome == SuggestionOutcome.REJECTED and suggestion.posted_question_id:
        question = await forum.get_question(suggestion.posted_question_id)
        return Routed(route=await _existing_route(question.id), question=question)  # a retried click
    tags = suggestion.draft_tags.split()
    async with in_transaction():
        await _decide(suggestion, SuggestionOutcome.REJECTED)
        # jobs=None: the embedding job is queued below, after this transaction has committed.
        question = await forum.create_question(user, suggestion.draft_title, suggestion.draft_body, tags, jobs=None)
        await Suggestion.filter(id=suggestion.id).update(posted_question_id=question.id)
        await record_event(EventKind.SUGGESTION_REJECTED, actor_id=user.id,
                           question_id=suggestion.suggested_question_id,
                           answer_id=suggestion.suggested_answer_id,
                           suggestion_id=suggestion.id, posted_question_id=question.id)
    await enqueue_embed(question, jobs=jobs)
    # Its twin was close enough to be offered as the answer: the forum's helpers start from there, and
    # only urgency opens a swarm.
    route = await _route_posted(question, user, tags, services.RELATED_THRESHOLD, policy=policy, broker=broker,
                                jobs=jobs)
    return Routed(route=route, question=question, suggestion=await Suggestion.get(id=suggestion.id))


async def enqueue_embed(question: Question, *, jobs: JobQueue) -> None:
    """The same job (and job id) forum.services queues on create and edit."""
    await jobs.enqueue(JobName.EMBED_QUESTION, job_id=f"embed-question:{question.id}:{question.updated_at.timestamp()}",
                       question_id=question.id)


async def suggestion_view(suggestion_id: int, user: User) -> dict[str, Any]:
    """The offer page: the draft, the matched question and its accepted answer in full."""
    suggestion = await get_suggestion(suggestion_id, user)
    question = await forum.get_question(suggestion.suggested_question_id)
    answer = await Answer.get_or_none(id=suggestion.suggested_answer_id)
    return {
        "suggestion": suggestion, "question": question, "answer": answer,
        "route": suggestion_route(suggestion),
    }
