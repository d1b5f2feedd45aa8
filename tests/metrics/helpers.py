"""Set-up for metrics tests: people and questions through the real services, events with fixed times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from supportswarm.accounts import services as accounts
from supportswarm.accounts.models import User
from supportswarm.forum import services as forum
from supportswarm.forum.models import Answer, Question
from supportswarm.metrics.events import EventKind, record_event
from supportswarm.swarm.models import Swarm

PASSWORD = "correct horse battery"
T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)  # a Monday


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def person(username: str, role: str = "customer") -> User:
    return await accounts.register(username, PASSWORD, role=role)


async def ask(author: User, title: str, tags: list[str], seconds: float) -> Question:
    return await forum.create_question(author, title, "Details of the problem, as the customer wrote them.", tags,
                                       jobs=None, created_at=at(seconds))


async def respond(question: Question, responder: User, seconds: float, kind: EventKind = EventKind.ANSWER_POSTED,
                  *, first: bool = False) -> None:
    """A response event at a fixed time; `first` also logs FIRST_RESPONSE as forum.record_response would."""
    await record_event(kind, actor_id=responder.id, question_id=question.id, at=at(seconds))
    if first:
        await record_event(EventKind.FIRST_RESPONSE, actor_id=responder.id, question_id=question.id,
                           at=at(seconds), role=str(responder.role))


async def answer(question: Question, author: User, seconds: float) -> Answer:
    return await Answer.create(question=question, author=author, body="Do this and that.", created_at=at(seconds),
                               updated_at=at(seconds))


async def resolve(question: Question, by: User | None, seconds: float, answer_id: int | None = None) -> None:
    await record_event(EventKind.QUESTION_RESOLVED, actor_id=by.id if by else None, question_id=question.id,
                       answer_id=answer_id, at=at(seconds))


async def swarm_for(question: Question, seconds: float, reason: str = "no_match") -> Swarm:
    swarm = await Swarm.create(question=question, reason=reason, opened_at=at(seconds))
    await record_event(EventKind.SWARM_OPENED, question_id=question.id, swarm_id=swarm.id, at=at(seconds),
                       reason=reason)
    return swarm
