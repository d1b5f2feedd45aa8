"""Property test of the room protocol: any sequence of frames, valid or not, leaves the room consistent.

Hypothesis draws sequences of (member, frame) steps: hello, say (valid, empty, oversized, NUL, lone
surrogates, non-strings, reused client_msg_ids), typing, mark_solution (good and bad seqs), leave and
garbage (not JSON, wrong types, deep nesting, oversized, binary). Two members (the asker and an expert)
drive one room over in-process websockets; after each frame a probe (a second `hello`, always answered
with an error) shows the server has finished with it, so the order of effects is the order sent and a
small model predicts the outcome. Checked afterwards, in PostgreSQL and on the sockets:

- messages are exactly the model's: seqs 1..n without gaps, `last_seq` = n, each client_msg_id once;
- resolved iff a valid mark_solution was sent while open, and then the question's accepted answer is
  that message's text, linked to the swarm; nothing is stored after resolution;
- sockets only ever close with 1000 (leave) or 4400 (bad frame) — never 1011 (a server error).
"""

from __future__ import annotations

import contextlib
import json
import re
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from httpx_ws import WebSocketDisconnect, WebSocketNetworkError
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from supportswarm.accounts import services as accounts
from supportswarm.accounts.models import User
from supportswarm.forum import services as forum
from supportswarm.forum.models import Answer, Question
from supportswarm.resources import Resources
from supportswarm.swarm import services as swarms
from supportswarm.swarm.models import Swarm, SwarmMessage, SwarmStatus
from tests.security.room import Room, join
from tests.security.scene import PASSWORD, NoJobs

pytestmark = pytest.mark.timeout(180)

CMID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
PROBE = {"type": "hello", "last_seq": 0}  # mid-session, always answered with an error frame

FRESH = "fresh"  # replaced by a new client_msg_id when sent; the others are reused on purpose
good_bodies = st.one_of(st.sampled_from(["my card is declined", "which card?", "try the other terminal", "ok",
                                         "  padded solution text  "]), st.text(min_size=1, max_size=30))
bad_bodies = st.one_of(st.just("   "), st.just("x" * (swarms.MESSAGE_MAX + 1)), st.just("a\x00b"),
                       st.just("bad \ud800 surrogate"), st.integers(), st.none(), st.lists(st.text(max_size=3)))
KINDS: dict[str, st.SearchStrategy[Any]] = {
    "say": st.fixed_dictionaries({"type": st.just("say"), "body": good_bodies,
                                  "client_msg_id": st.sampled_from([FRESH, FRESH, FRESH, "m1", "m2"])}),
    "bad_say": st.fixed_dictionaries({"type": st.just("say"), "body": st.one_of(good_bodies, bad_bodies),
                                      "client_msg_id": st.one_of(st.sampled_from(["", "x" * 65, "bad id"]),
                                                                 st.integers())}),
    "mark": st.fixed_dictionaries({"type": st.just("mark_solution"), "seq": st.one_of(
        st.integers(1, 4), st.integers(-1, 6), st.sampled_from(["1", None, True]))}),
    "garbage": st.sampled_from([
        "not json", '["say"]', '{"type": 5}', '{"type": ["say"]}', '{"type": "shout"}', "[" * 3000 + "]" * 3000,
        json.dumps({"type": "say", "client_msg_id": "m9", "body": "y" * 20_000}), b"\x00binary"]),
    "typing": st.just({"type": "typing"}),
    "leave": st.just({"type": "leave"}),
    "hello": st.fixed_dictionaries({"type": st.just("hello"), "last_seq": st.integers(-1, 3)}),
}
# Says weigh most, so rooms fill up and marking a solution has something to mark.
WEIGHTED = ["say"] * 6 + ["mark"] * 2 + ["bad_say", "garbage", "typing", "leave", "hello"]
steps = st.lists(st.tuples(st.sampled_from(["asker", "expert"]), st.sampled_from(WEIGHTED).flatmap(KINDS.__getitem__)),
                 min_size=2, max_size=14)


@dataclass
class Model:
    """What the server must have done, frame by frame, in the order sent."""

    messages: list[tuple[str, str]] = field(default_factory=list)  # (client_msg_id, stored text)
    solution: str | None = None

    def apply(self, frame: dict[str, Any] | str | bytes) -> None:
        if not isinstance(frame, dict) or self.solution is not None:
            return
        if frame["type"] == "say" and valid_say(frame) and frame["client_msg_id"] not in dict(self.messages):
            self.messages.append((frame["client_msg_id"], frame["body"].strip()))
        elif frame["type"] == "mark_solution":
            seq = frame["seq"]
            if isinstance(seq, int) and not isinstance(seq, bool) and 1 <= seq <= len(self.messages):
                text = self.messages[seq - 1][1]
                if len(text) >= forum.ANSWER_MIN:  # the solution becomes an answer: answers are 5+ characters
                    self.solution = text


def valid_say(frame: dict[str, Any]) -> bool:
    cmid, body = frame["client_msg_id"], frame["body"]
    if not isinstance(cmid, str) or not CMID.match(cmid) or not isinstance(body, str) or "\x00" in body:
        return False
    try:
        body.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return 0 < len(body.strip()) <= swarms.MESSAGE_MAX


class Driver:
    """One socket per member, reconnected after a close; records every close code."""

    def __init__(self, app: Any, swarm_id: int, headers: dict[str, dict[str, str]], stack: AsyncExitStack) -> None:
        self.app, self.swarm_id, self.headers, self.stack = app, swarm_id, headers, stack
        self.rooms: dict[str, Room] = {}
        self.closes: list[int] = []

    async def send(self, who: str, frame: dict[str, Any] | str | bytes) -> None:
        room = self.rooms.get(who)
        if room is None or room.closed is not None:
            room = self.rooms[who] = await self.stack.enter_async_context(
                join(self.app, self.swarm_id, self.headers[who]))
        if isinstance(frame, bytes):
            await room.ws.send_bytes(frame)
        else:
            await room.send(frame)
        with contextlib.suppress(WebSocketDisconnect, WebSocketNetworkError):  # closed already: read below
            await room.send(PROBE)
        # Everything up to the probe's answer (or the close) belongs to `frame`; a `hello` step is answered
        # like the probe, so then two such answers are due.
        due = 2 if isinstance(frame, dict) and frame["type"] == "hello" else 1
        while due:
            reply = await room.next("error", "closed")
            if reply["type"] == "closed":
                self.closes.append(reply["code"])
                return
            due -= reply.get("ref") == "hello"


async def room_state(swarm_id: int) -> tuple[Swarm, list[SwarmMessage], Question]:
    swarm = await Swarm.get(id=swarm_id)
    messages = list(await SwarmMessage.filter(swarm_id=swarm_id).order_by("seq"))
    return swarm, messages, await Question.get(id=swarm.question_id)  # type: ignore[attr-defined]


@pytest.fixture
async def members(app: LifespanManager) -> dict[str, User]:
    return {"asker": await accounts.register("asker", PASSWORD),
            "expert": await accounts.register("expert", PASSWORD, role="expert")}


@given(program=steps)
@settings(max_examples=30, deadline=None, database=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
async def test_any_frame_sequence_leaves_the_room_consistent(program: list[tuple[str, Any]], app: LifespanManager,
                                                              resources: Resources, members: dict[str, User]) -> None:
    asker = members["asker"]
    question = await forum.create_question(asker, "Card declined at the till again", "", [], jobs=None)
    swarm = await swarms.open_swarm(question.id, opened_by=asker, reason="manual", broker=resources.broker,
                                    jobs=NoJobs())
    tokens = {who: {"Authorization": f"Bearer {await accounts.create_token(user)}"} for who, user in members.items()}
    model = Model()
    async with AsyncExitStack() as stack:
        driver = Driver(app.app, swarm.id, tokens, stack)
        for n, (who, frame) in enumerate(program):
            if isinstance(frame, dict) and frame.get("client_msg_id") == FRESH:
                frame = frame | {"client_msg_id": f"n{n}"}
            await driver.send(who, frame)
            model.apply(frame)
    assert set(driver.closes) <= {1000, 4400}, driver.closes

    stored_swarm, stored, stored_question = await room_state(swarm.id)
    assert [m.seq for m in stored] == list(range(1, len(stored) + 1)) and stored_swarm.last_seq == len(stored)
    assert [(m.client_msg_id, m.body) for m in stored] == model.messages
    if model.solution is None:
        assert stored_swarm.status == SwarmStatus.OPEN and stored_question.accepted_answer_id is None  # type: ignore[attr-defined]
    else:
        accepted = await Answer.get(id=stored_question.accepted_answer_id)  # type: ignore[attr-defined]
        assert stored_swarm.status == SwarmStatus.RESOLVED and str(stored_question.status) == "resolved"
        assert stored_swarm.solution_answer_id == accepted.id  # type: ignore[attr-defined]
        assert (accepted.body, accepted.from_swarm_id) == (model.solution, swarm.id)  # type: ignore[attr-defined]
