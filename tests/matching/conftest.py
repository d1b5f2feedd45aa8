"""Matching fixtures: forum content built through the real services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from supportswarm.accounts import services as accounts
from supportswarm.accounts.models import User
from supportswarm.forum import services as forum
from supportswarm.metrics.models import Event
from supportswarm.resources import Resources


@dataclass(frozen=True)
class Answered:
    question_id: int
    answer_id: int


class Forum:
    """Builds forum content through the real services; `settle()` waits for the embedding jobs."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self._users: dict[str, User] = {}

    async def user(self, name: str, role: str = "customer") -> User:
        if name not in self._users:
            self._users[name] = await accounts.register(name, "correct horse battery", role=role)
        return self._users[name]

    async def question(self, title: str, body: str = "", tags: list[str] | None = None, *, by: str = "poster",
                       external_id: str | None = None) -> int:
        question = await forum.create_question(await self.user(by), title, body, tags or [], jobs=self.resources.jobs,
                                               external_id=external_id)
        return question.id

    async def answered(self, title: str, answer: str, body: str = "", tags: list[str] | None = None,
                       external_id: str | None = None) -> Answered:
        question_id = await self.question(title, body, tags, external_id=external_id)
        posted = await forum.post_answer(await self.user("helper"), question_id, answer)
        await forum.accept_answer(await self.user("poster"), posted.id)
        return Answered(question_id, posted.id)

    async def settle(self) -> None:
        await self.resources.jobs.drain()


@pytest.fixture
def forum_content(resources: Resources) -> Forum:
    return Forum(resources)


async def events(kind: str) -> list[dict[str, Any]]:
    """The event log's rows of one kind, oldest first."""
    rows: list[dict[str, Any]] = await Event.filter(kind=kind).order_by("id").values(
        "actor_id", "question_id", "answer_id", "data")
    return rows
