"""Shared set-up for swarm tests: members and questions made through the real services."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from supportswarm.accounts import services as accounts
from supportswarm.accounts.models import User
from supportswarm.forum import services as forum
from supportswarm.forum.models import Question

PASSWORD = "correct horse battery"


async def member(username: str, role: str = "customer", *, on_duty: bool = False, reputation: int = 1) -> User:
    user = await accounts.register(username, PASSWORD, role=role)
    if on_duty:
        await accounts.set_on_duty(user, True)
    if reputation != 1:
        await accounts.add_reputation(user.id, reputation - 1)
    return await User.get(id=user.id)


async def question(author: User | None, title: str = "My card payment was declined twice",
                   body: str = "At the grocery store, twice in a row.", tags: list[str] | None = None,
                   created_at: datetime | None = None) -> Question:
    return await forum.create_question(author, title, body, tags if tags is not None else ["cards"], jobs=None,
                                       created_at=created_at)


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout_s: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.02)
