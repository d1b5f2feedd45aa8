"""A cast of users, one per role, and fresh objects owned by the `owner`, made through the real services.

Every object a test needs is made anew (unique words in its text), so one request's effect (an
accepted answer, a dismissed cluster, a deleted webhook) never decides another's expected result.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from supportswarm.accounts import services as accounts
from supportswarm.accounts.models import User
from supportswarm.forum import services as forum
from supportswarm.matching import routing
from supportswarm.metrics import emergent
from supportswarm.metrics.emergent import EmergentConfig
from supportswarm.metrics.rollup import fetch
from supportswarm.moderation import services as moderation
from supportswarm.resources import Resources
from supportswarm.swarm import services as swarms
from supportswarm.webhooks import services as webhooks
from supportswarm.webhooks.models import WebhookDelivery

PASSWORD = "correct horse battery"
ROLES = ("anonymous", "customer", "expert", "staff", "lead", "admin", "owner")
# The owner is a customer who wrote (asked, answered, was offered) every object the request is about.
ROLE_OF = {"customer": "customer", "expert": "expert", "staff": "staff", "lead": "lead", "admin": "admin",
           "owner": "customer"}
_counter = itertools.count(1)


def words(n: int = 4) -> str:
    """Random words no other text shares, so matching never confuses one scene's objects with another's."""
    return " ".join(f"w{secrets.token_hex(4)}" for _ in range(n))


@dataclass
class Cast:
    users: dict[str, User]
    tokens: dict[str, str]

    def headers(self, role: str) -> dict[str, str]:
        return {} if role == "anonymous" else {"Authorization": f"Bearer {self.tokens[role]}"}

    @property
    def owner(self) -> User:
        return self.users["owner"]


async def make_cast() -> Cast:
    users: dict[str, User] = {}
    tokens: dict[str, str] = {}
    for role, real_role in ROLE_OF.items():
        user = await accounts.register(f"{role}{next(_counter)}", PASSWORD, role=real_role)
        users[role], tokens[role] = user, await accounts.create_token(user)
    return Cast(users, tokens)


class NoJobs:
    """Dispatching deliveries without sending them: the scene only needs rows to point at."""

    async def enqueue(self, name: Any, *, job_id: str | None = None, **kwargs: Any) -> None:
        return None

    async def drain(self) -> None:
        return None

    async def close(self) -> None:
        return None


@dataclass
class Scene:
    cast: Cast
    resources: Resources

    async def question(self) -> int:
        # jobs=None: no embedding job; only suggestions and clusters need vectors (they make their own).
        q = await forum.create_question(self.cast.owner, f"Question {words()}", f"Body {words()}", ["security"],
                                        jobs=None)
        return q.id

    async def answer(self) -> int:
        a = await forum.post_answer(self.cast.owner, await self.question(), f"Answer {words()}")
        return a.id

    async def comment(self) -> int:
        c = await forum.post_comment(self.cast.owner, f"Comment {words()}", question_id=await self.question())
        return c.id

    async def message(self) -> int:
        """A live swarm on the owner's question whose message 1 a staff helper wrote; returns the swarm's id."""
        swarm_id = await self.swarm()
        helper = await accounts.register(f"helper{next(_counter)}", PASSWORD, role="staff")
        await swarms.post_message(swarm_id, helper, f"Message {words()}", "m1", broker=self.resources.broker,
                                  jobs=NoJobs())
        return swarm_id

    async def flag(self) -> int:
        """A pending flag by a fresh member on the owner's question."""
        flagger = await accounts.register(f"flagger{next(_counter)}", PASSWORD)
        flagged = await moderation.flag_post(flagger, moderation.PostKind.QUESTION, await self.question(),
                                             reason="off_topic", detail="", flags_to_hide=3)
        return flagged.flag.id

    async def token(self) -> int:
        """One of the owner's API tokens (not the one the cell authenticates with)."""
        row, _token = await accounts.issue_token(self.cast.owner, name=words(1))
        return row.id

    async def user(self) -> int:
        """A fresh customer for the admins' user management to act on."""
        return (await accounts.register(f"member{next(_counter)}", PASSWORD)).id

    async def suggestion(self) -> int:
        """A confident match offered to the owner (an answered question with the same text)."""
        title, body = f"Solved {words()}", f"Body {words()}"
        q = await forum.create_question(self.cast.owner, title, body, [], jobs=self.resources.jobs)
        answer = await forum.post_answer(self.cast.owner, q.id, f"Answer {words()}")
        await forum.accept_answer(self.cast.owner, answer.id)
        await self.resources.jobs.drain()  # the embedding job
        routed = await routing.ask_question(
            self.cast.owner, routing.Draft(title=title, body=body, tags=[]), policy=routing.AskPolicy(
                answer_threshold=0.0), embedder=self.resources.embedder, broker=self.resources.broker,
            jobs=self.resources.jobs)
        assert routed.suggestion is not None, routed.route
        return routed.suggestion.id

    async def swarm(self) -> int:
        q = await self.question()
        swarm = await swarms.open_swarm(q, opened_by=self.cast.owner, reason="manual", broker=self.resources.broker,
                                        jobs=NoJobs())
        return swarm.id

    async def cluster(self) -> int:
        """An emergent cluster: two questions with the same text, embedded, then detection."""
        title = f"Burst {words()}"
        ids = [(await forum.create_question(self.cast.owner, title, "same", [], jobs=self.resources.jobs)).id
               for _ in range(2)]
        await self.resources.jobs.drain()
        await emergent.detect(now=datetime.now(UTC), config=EmergentConfig(min_size=2))
        rows = await fetch("SELECT cluster_id FROM emergent_cluster_questions WHERE question_id = $1", [ids[0]])
        return int(rows[0]["cluster_id"])

    async def webhook(self) -> int:
        hook = await webhooks.create_webhook(self.cast.users["admin"], "http://127.0.0.1:9/hook",
                                             description=words(2))
        return hook.id

    async def delivery(self) -> int:
        hook_id = await self.webhook()
        await self.question()  # a question_asked event after the webhook exists
        await webhooks.dispatch_events(jobs=NoJobs())
        delivery = await WebhookDelivery.filter(webhook_id=hook_id).order_by("-id").first()
        assert delivery is not None
        return int(delivery.id)

    async def make(self, kind: str) -> int:
        return int(await getattr(self, kind)())
