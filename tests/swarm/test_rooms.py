"""A process's rooms (swarm/rooms.py): one subscription and one presence refresh per room, shared by its sessions."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from supportswarm.realtime.broker import BrokerUnavailable
from supportswarm.realtime.memory import MemoryBroker
from supportswarm.realtime.protocol import Envelope, EventType, swarm_channel
from supportswarm.resources import Resources
from supportswarm.swarm import expertise, rooms, services
from tests.security.scene import NoJobs
from tests.swarm.helpers import member, question

pytestmark = pytest.mark.timeout(30)


class Recorder:
    """A room member that keeps what the room tells it."""

    def __init__(self, presence_key: str, *, helper: bool = False) -> None:
        self.presence_key, self.helper = presence_key, helper
        self.envelopes: list[Envelope] = []
        self.catch_ups = 0
        self.ended: list[BaseException | None] = []

    def on_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def catch_up(self) -> None:
        self.catch_ups += 1

    def end(self, error: BaseException | None) -> None:
        self.ended.append(error)


class CountingBroker(MemoryBroker):
    """The in-process broker, counting its presence refreshes and subscriptions."""

    def __init__(self, **kwargs: float) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.refreshes: list[tuple[str, list[str]]] = []
        self.subscriptions = 0
        self.refuse_subscriptions = False

    async def set_presence(self, room: str, members: Sequence[str], ttl: float) -> None:
        self.refreshes.append((room, list(members)))
        await super().set_presence(room, members, ttl)

    async def subscribe(self, channels: Sequence[str]):  # type: ignore[no-untyped-def]
        if self.refuse_subscriptions:
            raise BrokerUnavailable("refused for the test")
        self.subscriptions += 1
        return await super().subscribe(channels)


def message(swarm_id: int, seq: int) -> Envelope:
    return Envelope(channel=swarm_channel(swarm_id), type=EventType.MESSAGE.value, op="add", seq=seq,
                    data={"type": "message", "seq": seq})


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_one_subscription_per_room_feeds_every_local_member_in_order() -> None:
    broker = CountingBroker()
    local = rooms.LocalRooms(broker)
    alice, bob, carol = Recorder("1:a"), Recorder("2:b"), Recorder("3:c")
    room = await local.join(7, alice)
    assert await local.join(7, bob) is room
    await local.join(8, carol)
    assert broker.subscriptions == 2, "one subscription per room, not per member"
    for seq in (1, 2, 3):
        await broker.publish(message(7, seq))
    await settle()
    assert [e.seq for e in alice.envelopes] == [e.seq for e in bob.envelopes] == [1, 2, 3]
    assert carol.envelopes == [], "rooms are separate"
    await broker.close()


async def test_members_are_marked_present_on_join_and_refreshed_in_one_call_per_room(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rooms, "PRESENCE_REFRESH_S", 0.05)
    broker = CountingBroker()
    local = rooms.LocalRooms(broker)
    members = [Recorder(f"{i}:conn", helper=i == 0) for i in range(5)]
    for m in members:
        await local.join(3, m)
    assert await broker.presence(swarm_channel(3)) == sorted(m.presence_key for m in members)
    assert await broker.presence(expertise.ONLINE_ROOM) == ["0:conn"], "helpers are also online for invitations"
    broker.refreshes.clear()
    await asyncio.sleep(0.08)
    assert (swarm_channel(3), [m.presence_key for m in members]) in broker.refreshes
    assert (expertise.ONLINE_ROOM, ["0:conn"]) in broker.refreshes
    assert len(broker.refreshes) <= 4, f"one call per room and kind each interval, not per member: {broker.refreshes}"
    await broker.close()


async def test_the_last_member_out_closes_the_subscription_and_a_new_one_opens_another() -> None:
    broker = CountingBroker()
    local = rooms.LocalRooms(broker)
    alice, bob = Recorder("1:a"), Recorder("2:b")
    room = await local.join(5, alice)
    await local.join(5, bob)
    await room.leave(alice)
    assert len(local) == 1
    await room.leave(bob)
    assert len(local) == 0
    await settle()
    await broker.publish(message(5, 1))
    await settle()
    assert alice.envelopes == bob.envelopes == [], "closed: nothing is delivered any more"
    again = Recorder("3:c")
    assert await local.join(5, again) is not room
    assert broker.subscriptions == 2
    await broker.publish(message(5, 2))
    await settle()
    assert [e.seq for e in again.envelopes] == [2]
    await broker.close()


async def test_a_lost_subscription_is_renewed_and_every_member_catches_up() -> None:
    broker = CountingBroker(max_queue=2)
    local = rooms.LocalRooms(broker)
    alice, bob = Recorder("1:a"), Recorder("2:b")
    await local.join(4, alice)
    await local.join(4, bob)
    for seq in (1, 2, 3):  # without yielding: the room's queue of 2 overflows
        await broker.publish(message(4, seq))
    await settle()
    assert alice.catch_ups == bob.catch_ups == 1, "they read what they missed from the database"
    assert broker.subscriptions == 2
    await broker.publish(message(4, 4))
    await settle()
    assert alice.envelopes[-1].seq == bob.envelopes[-1].seq == 4
    await broker.close()


async def test_members_end_when_the_broker_closes_or_cannot_resubscribe() -> None:
    broker = CountingBroker()
    local = rooms.LocalRooms(broker)
    alice = Recorder("1:a")
    await local.join(6, alice)
    await broker.close()
    await settle()
    assert alice.ended == [None], "a stopping process: the client reconnects elsewhere"
    assert len(local) == 0, "a new session starts a new subscription instead of joining the dead one"

    broker = CountingBroker(max_queue=1)
    local = rooms.LocalRooms(broker)
    bob = Recorder("2:b")
    await local.join(6, bob)
    broker.refuse_subscriptions = True
    await broker.publish(message(6, 1))
    await broker.publish(message(6, 2))
    await settle()
    assert len(bob.ended) == 1 and isinstance(bob.ended[0], BrokerUnavailable)
    with pytest.raises(BrokerUnavailable):
        await local.join(6, Recorder("3:c"))
    assert len(local) == 0, "a refused join leaves nothing behind"
    await broker.close()


async def test_the_ticker_announces_members_whose_replica_died(resources: Resources,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rooms, "PRESENCE_REFRESH_S", 0.1)
    asker, helper = await member("asker"), await member("sam", "staff")
    swarm = await services.open_swarm((await question(asker)).id, opened_by=asker, reason="manual",
                                      broker=resources.broker, jobs=NoJobs())
    swarm = await services.get_swarm(swarm.id)
    for user in (asker, helper):
        await services.join_swarm(swarm, user, expert_reputation=100)
    broker = MemoryBroker()
    local = rooms.LocalRooms(broker)
    here = Recorder(services.presence_member(asker.id, "here"))
    room = await local.join(swarm.id, here)
    await broker.set_presence(swarm_channel(swarm.id), [services.presence_member(helper.id, "elsewhere")], ttl=0.15)
    room.online = {asker.id, helper.id}  # as the last presence frame said
    async with asyncio.timeout(5):
        while True:
            await asyncio.sleep(0.05)
            frames = [e.data for e in here.envelopes if e.type == EventType.PRESENCE]
            if frames and {m["username"]: m["status"] for m in frames[-1]["members"]}.get("sam") == "offline":
                break
    assert room.online == {asker.id}
    await broker.close()


async def test_a_session_that_fails_on_a_notification_ends_and_the_room_goes_on() -> None:
    broker = CountingBroker()
    local = rooms.LocalRooms(broker)

    class Broken(Recorder):
        def on_envelope(self, envelope: Envelope) -> None:
            raise RuntimeError("a bug in one session")

    broken, fine = Broken("1:a"), Recorder("2:b")
    await local.join(9, broken)
    await local.join(9, fine)
    await broker.publish(message(9, 1))
    await broker.publish(message(9, 2))
    await settle()
    assert [e.seq for e in fine.envelopes] == [1, 2]
    assert len(broken.ended) == 2 and isinstance(broken.ended[0], RuntimeError)
    await broker.close()
