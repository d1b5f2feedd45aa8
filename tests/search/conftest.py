"""Search fixtures: threads (question, answers, comments, swarm rooms) built through the real services."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from supportswarm.accounts import services as accounts
from supportswarm.accounts.models import User
from supportswarm.forum import services as forum
from supportswarm.resources import Resources
from supportswarm.swarm import services as swarms
from supportswarm.swarm.models import Swarm

PASSWORD = "correct horse battery"


class Threads:
    """Forum content made the way users make it; `as_user` gives an HTTP client signed in as someone."""

    def __init__(self, resources: Resources, client: httpx.AsyncClient) -> None:
        self.resources = resources
        self.client = client
        self.users: dict[str, User] = {}
        self.tokens: dict[str, str] = {}

    async def user(self, name: str, role: str = "customer") -> User:
        if name not in self.users:
            self.users[name] = await accounts.register(name, PASSWORD, role=role)
            self.tokens[name] = await accounts.create_token(self.users[name])
        return self.users[name]

    async def question(self, title: str, body: str = "", tags: list[str] | None = None, *, by: str = "asker") -> int:
        question = await forum.create_question(await self.user(by), title, body, tags or [], jobs=self.resources.jobs)
        return question.id

    async def answer(self, question_id: int, body: str, *, by: str = "helper") -> int:
        return (await forum.post_answer(await self.user(by), question_id, body)).id

    async def comment(self, body: str, *, question_id: int | None = None, answer_id: int | None = None,
                      by: str = "commenter") -> int:
        return (await forum.post_comment(await self.user(by), body, question_id=question_id, answer_id=answer_id)).id

    async def room(self, question_id: int, *messages: str, by: str = "staffer") -> Swarm:
        """The question's swarm with these messages (seq 1, 2, ...), left open."""
        staff = await self.user(by, "staff")
        swarm = await swarms.open_swarm(question_id, opened_by=staff, reason="manual",
                                        broker=self.resources.broker, jobs=self.resources.jobs)
        for i, body in enumerate(messages):
            await swarms.post_message(swarm.id, staff, body, f"m{i}", broker=self.resources.broker,
                                      jobs=self.resources.jobs)
        return swarm

    async def resolve(self, swarm: Swarm, seq: int, *, by: str = "staffer") -> None:
        await swarms.resolve_swarm(swarm.id, await self.user(by, "staff"), seq, broker=self.resources.broker,
                                   expert_reputation=1000, jobs=self.resources.jobs)

    async def search(self, q: str, *, as_user: str | None = None, **params: Any) -> httpx.Response:
        await self.resources.jobs.drain()  # questions are embedded by a job: the vector side sees them all
        headers = {"Authorization": f"Bearer {self.tokens[as_user]}"} if as_user else {}
        return await self.client.get("/api/v1/search", params={"q": q, **params}, headers=headers)

    async def found(self, q: str, *, as_user: str | None = None, **params: Any) -> list[int]:
        """The ids of the first page, asserting the search answered 200."""
        response = await self.search(q, as_user=as_user, **params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]


@pytest.fixture
async def threads(resources: Resources, client: httpx.AsyncClient) -> Threads:
    return Threads(resources, client)
