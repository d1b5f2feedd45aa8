"""Storing room messages (swarm/store.py): many says in one statement, group commit, races on client_msg_id."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest
from tortoise import connections

from supportswarm.accounts.models import User
from supportswarm.db import ConnectionParams
from supportswarm.metrics.models import Event
from supportswarm.resources import Resources
from supportswarm.swarm import services, store
from supportswarm.swarm.models import Swarm, SwarmMessage, SwarmParticipant
from tests.security.scene import NoJobs
from tests.swarm.helpers import member, question

pytestmark = pytest.mark.timeout(30)


async def open_room(resources: Resources, asker: User) -> Swarm:
    return await services.open_swarm((await question(asker)).id, opened_by=asker, reason="manual",
                                     broker=resources.broker, jobs=NoJobs())


def say(swarm: Swarm, user: User, cmid: str) -> store.Say:
    return store.Say(swarm.id, user.id, f"body of {cmid}", cmid, datetime.now(UTC))


async def transcript(swarm: Swarm) -> list[tuple[int, str]]:
    return [(m.seq, m.client_msg_id) for m in await SwarmMessage.filter(swarm_id=swarm.id).order_by("seq")]


async def test_one_statement_stores_says_of_several_rooms_in_order(resources: Resources) -> None:
    asker, sam = await member("asker"), await member("sam", "staff")
    first, second, closed = [await open_room(resources, asker) for _ in range(3)]
    await Swarm.filter(id=closed.id).update(status="resolved")
    conn = connections.get("default")
    [before] = await store.store_messages(conn, [say(first, asker, "a0")])
    rows = await store.store_messages(conn, [
        say(first, sam, "a1"), say(second, asker, "b1"), say(first, asker, "a2"), say(first, sam, "a0"),
        say(second, sam, "b1"), say(closed, sam, "c1"), say(first, sam, "a3"),
    ])
    assert before["seq"] == 1
    assert [(r["seq"], r["stored"]) for r in rows] == [
        (2, False), (1, False), (3, False), (None, True), (None, True), (None, False), (4, False)]
    assert rows[5]["id"] is None, "a resolved room takes no messages"
    assert await transcript(first) == [(1, "a0"), (2, "a1"), (3, "a2"), (4, "a3")]
    assert await transcript(second) == [(1, "b1")]
    assert (await Swarm.get(id=first.id)).last_seq == 4 and (await Swarm.get(id=second.id)).last_seq == 1
    counts = {(p.swarm_id, p.user_id): p.messages for p in await SwarmParticipant.filter(  # type: ignore[attr-defined]
        swarm_id__in=[first.id, second.id], messages__gt=0)}
    assert counts == {(first.id, asker.id): 2, (first.id, sam.id): 2, (second.id, asker.id): 1}
    logged = await Event.filter(kind="swarm_message", swarm_id=first.id).order_by("id").values_list("data", flat=True)
    assert logged == [{"seq": 1}, {"seq": 2}, {"seq": 3}, {"seq": 4}]


async def test_concurrent_says_are_grouped_into_few_statements(resources: Resources,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    asker = await member("asker")
    rooms = [await open_room(resources, asker) for _ in range(5)]
    statements: list[int] = []
    real = store.store_messages

    async def counted(conn, says):  # type: ignore[no-untyped-def]
        statements.append(len(says))
        return await real(conn, says)

    monkeypatch.setattr(store, "store_messages", counted)
    batcher = store.SayBatcher()
    groups = await asyncio.gather(*(batcher.store([say(rooms[i % 5], asker, f"m{i}")]) for i in range(50)))
    rows = [row for group in groups for row in group if isinstance(row, dict)]
    assert sum(statements) == 50 and len(statements) <= 2, f"group commit, not a statement per say: {statements}"
    for room in rooms:
        assert [seq for seq, _ in await transcript(room)] == list(range(1, 11)), "gap-free per room"
    assert sorted(r["seq"] for r in rows) == sorted(list(range(1, 11)) * 5)


async def test_a_race_on_one_client_msg_id_falls_back_to_one_statement_per_say(
        resources: Resources, pg_params: ConnectionParams) -> None:
    asker = await member("asker")
    room = await open_room(resources, asker)
    other = await asyncpg.connect(pg_params.url())
    try:
        racing = other.transaction()
        await racing.start()  # another replica storing a retry of "x" right now, not committed yet
        await other.execute("INSERT INTO swarm_messages (swarm_id, seq, author_id, body, client_msg_id, created_at) "
                            "VALUES ($1, 100, $2, 'first try', 'x', now())", room.id, asker.id)
        batcher = store.SayBatcher()
        pending = asyncio.gather(batcher.store([say(room, asker, "y")]), batcher.store([say(room, asker, "x")]))
        await asyncio.sleep(0.3)  # the batch now waits on the racing row's unique key
        await racing.commit()
        [y], [x] = await asyncio.wait_for(pending, 10)
    finally:
        await other.close()
    assert isinstance(y, dict) and isinstance(x, dict)
    assert y["seq"] == 1 and not y["stored"], "the innocent say of the failed batch is stored on its own"
    assert x["stored"], "the raced say is answered with the stored one"
    assert await transcript(room) == [(1, "y"), (100, "x")]


async def test_a_group_of_says_is_never_split_over_statements(resources: Resources,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    asker = await member("asker")
    room = await open_room(resources, asker)
    statements: list[list[str]] = []
    real = store.store_messages

    async def counted(conn, says):  # type: ignore[no-untyped-def]
        statements.append([s.client_msg_id for s in says])
        return await real(conn, says)

    monkeypatch.setattr(store, "store_messages", counted)
    monkeypatch.setattr(store, "MAX_BATCH", 3)
    batcher = store.SayBatcher()
    groups = [[say(room, asker, f"{g}-{i}") for i in range(n)] for g, n in enumerate((2, 2, 5, 1))]
    stored = await asyncio.gather(*(batcher.store(group) for group in groups))
    for group, rows in zip(groups, stored, strict=True):
        assert any([s.client_msg_id for s in group] == statement[i:i + len(group)]
                   for statement in statements for i in range(len(statement))), f"{group} split over {statements}"
        seqs = [row["seq"] for row in rows if isinstance(row, dict)]
        assert seqs == list(range(seqs[0], seqs[0] + len(group))), "a group's says take consecutive seqs in order"
    assert max(len(s) for s in statements) == 5, "a group larger than a batch goes whole, on its own"
    assert [seq for seq, _ in await transcript(room)] == list(range(1, 11))
