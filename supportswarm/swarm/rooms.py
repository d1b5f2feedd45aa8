"""The rooms of this process: one broker subscription and one presence ticker per room, shared by its sessions.

Benchmarked in bench/swarm_ws.py (a room of 1,000 members): with a subscription per session, every message
was queued 1,000 times and woke 1,000 pump tasks before the first frame was written. Now the room reads it
once and hands it to each local session synchronously, which pushes it onto its socket's queue; only a
session that must first read a gap from the database (or has not sent its welcome yet) keeps it for a
task of its own. Likewise presence: one broker call per room and interval refreshes every local member,
where each connection used to refresh itself (what 10,000 idle connections spent their CPU on).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Protocol

from supportswarm.realtime.broker import Broker, BrokerUnavailable, Subscription, SubscriptionLost
from supportswarm.realtime.protocol import Envelope, EventType, swarm_channel
from supportswarm.swarm import expertise, services

log = logging.getLogger(__name__)

PRESENCE_TTL_S = 30.0
PRESENCE_REFRESH_S = 10.0
PRESENCE_BATCH_S = 0.5  # at most one presence broadcast per room and process in this interval, per 100 members


class RoomMember(Protocol):
    """What a room needs of a session (ws.RoomSession)."""

    presence_key: str
    helper: bool

    def on_envelope(self, envelope: Envelope) -> None:
        """Take a notification of the room, in publish order, without waiting."""

    def catch_up(self) -> None:
        """Notifications may have been lost: read what was missed from the database."""

    def end(self, error: BaseException | None) -> None:
        """The room's subscription ended (the broker closed, or is down when `error` is set)."""


class LocalRoom:
    """The sessions of one room in this process and the subscription that feeds them."""

    def __init__(self, swarm_id: int, broker: Broker, *, on_gone: Callable[[LocalRoom], None]) -> None:
        self.swarm_id = swarm_id
        self.channel = swarm_channel(swarm_id)
        self.broker = broker
        self.members: dict[RoomMember, None] = {}  # insertion-ordered set: frames go out in join order
        self.online: set[int] = set()
        """User ids of the last presence frame seen: the ticker announces when the broker's list differs."""
        self.gone = False
        self._on_gone = on_gone
        self._subscribing: asyncio.Future[Subscription] | None = None  # the current subscription, once made
        self._tasks: list[asyncio.Task[None]] = []

    async def join(self, member: RoomMember) -> None:
        """Add `member` and mark it present. Returns once the subscription is effective: everything published
        from then on reaches the member (resume relies on it). Raises BrokerUnavailable."""
        self.members[member] = None
        try:
            if self._subscribing is None:
                self._subscribing = asyncio.ensure_future(self.broker.subscribe([self.channel]))
            sub = await asyncio.shield(self._subscribing)  # one member giving up must not cancel the others' wait
            if self.gone:  # its subscription ended meanwhile (the broker is closing or down)
                raise BrokerUnavailable("the room's subscription ended")
            if not self._tasks:  # the first member through starts the room
                self._tasks = [asyncio.create_task(self._pump(sub), name=f"room-pump:{self.swarm_id}"),
                               asyncio.create_task(self._tick(), name=f"room-presence:{self.swarm_id}")]
            await self.refresh_presence([member])
        except BaseException:
            await self.leave(member)
            raise

    async def leave(self, member: RoomMember) -> None:
        """Remove `member`; the last one out closes the subscription."""
        self.members.pop(member, None)
        if self.members:
            return
        self._retire()
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        if self._subscribing is not None:
            self._subscribing.add_done_callback(_close_subscription)

    def _retire(self) -> None:
        if not self.gone:
            self.gone = True
            self._on_gone(self)

    async def refresh_presence(self, members: list[RoomMember]) -> None:
        await self.broker.set_presence(self.channel, [m.presence_key for m in members], PRESENCE_TTL_S)
        if helpers := [m.presence_key for m in members if m.helper]:
            await self.broker.set_presence(expertise.ONLINE_ROOM, helpers, PRESENCE_TTL_S)

    async def _pump(self, sub: Subscription) -> None:
        error: BaseException | None = None
        while True:
            try:
                async for envelope in sub:
                    if envelope.type == EventType.PRESENCE:
                        self.online = {m["id"] for m in envelope.data.get("members", [])
                                       if m.get("status") == "online"}
                    for member in list(self.members):
                        try:
                            member.on_envelope(envelope)
                        except Exception as exc:  # one session's bug must not leave the room deaf
                            log.exception("swarm %s: a session failed on %s", self.swarm_id, envelope.type)
                            member.end(exc)
                break  # the broker closed: the process is stopping; clients reconnect elsewhere
            except SubscriptionLost as exc:  # fell behind, or the broker connection dropped: resubscribe, catch up
                log.info("swarm %s: subscription lost (%s); resuming from the database", self.swarm_id, exc)
                await sub.close()
                try:
                    sub = await self.broker.subscribe([self.channel])
                except BrokerUnavailable as down:
                    error = down
                    break
                self._subscribing = _done(sub)  # what the last member out closes
                for member in list(self.members):
                    member.catch_up()
        self._retire()  # a new session of this room starts a new subscription instead of joining a dead one
        for member in list(self.members):
            member.end(error)

    async def _tick(self) -> None:
        """Keep this process's members present, and notice members whose replica died (their presence expired)."""
        while True:
            await asyncio.sleep(PRESENCE_REFRESH_S)
            try:
                await self.refresh_presence(list(self.members))
                if services.online_user_ids(await self.broker.presence(self.channel)) != self.online:
                    announce_presence(self.swarm_id, self.broker)
            except BrokerUnavailable as exc:
                log.warning("swarm %s: presence refresh failed: %s", self.swarm_id, exc)


def _done(sub: Subscription) -> asyncio.Future[Subscription]:
    future: asyncio.Future[Subscription] = asyncio.get_running_loop().create_future()
    future.set_result(sub)
    return future


def _close_subscription(future: asyncio.Future[Subscription]) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    task = asyncio.ensure_future(future.result().close())
    _running.add(task)
    task.add_done_callback(_running.discard)


class LocalRooms:
    """Room id -> LocalRoom, for one broker (one app)."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._rooms: dict[int, LocalRoom] = {}

    def __len__(self) -> int:
        return len(self._rooms)

    async def join(self, swarm_id: int, member: RoomMember) -> LocalRoom:
        room = self._rooms.get(swarm_id)
        if room is None:
            room = self._rooms[swarm_id] = LocalRoom(swarm_id, self._broker, on_gone=self._forget)
        await room.join(member)
        return room

    def _forget(self, room: LocalRoom) -> None:
        if self._rooms.get(room.swarm_id) is room:
            del self._rooms[room.swarm_id]


_local: weakref.WeakKeyDictionary[Broker, LocalRooms] = weakref.WeakKeyDictionary()  # per app


def local_rooms(broker: Broker) -> LocalRooms:
    if (rooms := _local.get(broker)) is None:
        rooms = _local[broker] = LocalRooms(broker)
    return rooms


# Presence broadcasts, batched per room and process. Benchmarked in bench/swarm_ws.py: broadcasting the
# full member list on every join and leave, and recomputing it in every session that noticed a change,
# made filling a room O(n^2) frames of O(n) size plus O(n^2) database reads: a room of 1,000 could not be
# assembled in minutes. Now a room costs at most one member-list query and broadcast per interval, and the
# interval grows with the room so that the bytes of presence per second grow linearly, not quadratically.
class _Batch:
    again = False  # a change came after the last broadcast read the member list


_announcing: weakref.WeakKeyDictionary[Broker, dict[int, _Batch]] = weakref.WeakKeyDictionary()  # per app
_running: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks


def announce_presence(swarm_id: int, broker: Broker) -> None:
    """Broadcast the room's presence now; within the batch interval after a broadcast, once more at the end of
    that interval instead, covering every change in between."""
    batches = _announcing.setdefault(broker, {})
    if (batch := batches.get(swarm_id)) is not None:
        batch.again = True
        return
    batches[swarm_id] = batch = _Batch()
    task = asyncio.create_task(_announce(swarm_id, broker, batches, batch))
    _running.add(task)
    task.add_done_callback(_running.discard)


async def _announce(swarm_id: int, broker: Broker, batches: dict[int, _Batch], batch: _Batch) -> None:
    try:
        while True:
            batch.again = False
            members = 0
            try:
                frame, _online = await services.presence_frame(swarm_id, broker)
                members = len(frame["members"])
                await services.notify(broker, Envelope(channel=swarm_channel(swarm_id), type=EventType.PRESENCE.value,
                                                       op="update", data=frame))
            except Exception as exc:  # broker or database unavailable, or the app stopping: the next tick retries
                log.info("swarm %s: presence broadcast failed: %r", swarm_id, exc)
            await asyncio.sleep(PRESENCE_BATCH_S * max(1.0, members / 100))
            if not batch.again:
                return
    finally:
        batches.pop(swarm_id, None)

