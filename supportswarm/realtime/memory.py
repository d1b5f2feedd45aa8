"""In-process broker for tests and single-process development, after message_bus `backends/memory.rb`.

`QueueSubscription` and `Fanout` are shared with RedisBroker, whose single reader task fans out to
local subscriptions the same way `MemoryBroker.publish` does.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Self

from supportswarm.realtime.broker import BrokerUnavailable, SubscriptionLost
from supportswarm.realtime.protocol import Envelope

DEFAULT_MAX_QUEUE = 1000


def check_members(members: Sequence[str]) -> Sequence[str]:
    if isinstance(members, str):
        raise TypeError("presence takes a sequence of members, not one string")
    return members


class QueueSubscription:
    """A subscription backed by a bounded asyncio queue; the publisher never waits on it."""

    def __init__(
        self, channels: Sequence[str], *, maxsize: int, on_close: Callable[[QueueSubscription], Awaitable[None]]
    ) -> None:
        if not channels or isinstance(channels, str):
            raise ValueError("subscribe needs a non-empty sequence of channel names")
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")  # asyncio.Queue(0) would be unbounded
        self.channels = tuple(dict.fromkeys(channels))
        self._queue: asyncio.Queue[Envelope | None] = asyncio.Queue(maxsize=maxsize)  # None: wake-up sentinel
        self._on_close = on_close
        self._closed = False
        self._lost: str | None = None

    def offer(self, envelope: Envelope) -> bool:
        """Queue `envelope` without waiting; False when the subscriber is too far behind."""
        if self._closed or self._lost is not None:
            return True  # ended subscriptions silently ignore late deliveries
        try:
            self._queue.put_nowait(envelope)
        except asyncio.QueueFull:
            return False
        return True

    def lose(self, reason: str) -> None:
        """End the subscription with SubscriptionLost: the consumer must resume from the database."""
        if not self._closed and self._lost is None:
            self._lost = reason
            self._wake()

    def end(self) -> None:
        """End iteration normally without notifying the owner (used when the broker closes)."""
        if not self._closed:
            self._closed = True
            self._wake()

    def _wake(self) -> None:
        # Queued envelopes are useless after the end (the consumer resumes from the database), so
        # drop them; that also guarantees room for the sentinel that wakes a waiting consumer.
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def close(self) -> None:
        if self._closed:
            return
        self.end()
        await self._on_close(self)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Envelope:
        item = None if self._closed or self._lost is not None else await self._queue.get()
        if item is not None:
            return item
        if self._lost is not None and not self._closed:
            raise SubscriptionLost(self._lost)
        raise StopAsyncIteration

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class Fanout:
    """Channel -> local subscriptions. Delivery is synchronous and never blocks (slow ones are dropped)."""

    def __init__(self) -> None:
        self._subs: dict[str, dict[QueueSubscription, None]] = {}  # dict as an insertion-ordered set

    def channels(self) -> list[str]:
        return list(self._subs)

    def has(self, channel: str) -> bool:
        return channel in self._subs

    def add(self, sub: QueueSubscription) -> list[str]:
        """Register `sub`; return the channels that had no subscriber before."""
        added = [ch for ch in sub.channels if ch not in self._subs]
        for ch in sub.channels:
            self._subs.setdefault(ch, {})[sub] = None
        return added

    def remove(self, sub: QueueSubscription) -> list[str]:
        """Unregister `sub`; return the channels left without subscribers."""
        emptied = []
        for ch in sub.channels:
            subs = self._subs.get(ch)
            if subs is None or sub not in subs:
                continue
            del subs[sub]
            if not subs:
                del self._subs[ch]
                emptied.append(ch)
        return emptied

    def deliver(self, envelope: Envelope) -> list[str]:
        """Offer `envelope` to its channel's subscribers; return channels emptied by dropping slow ones."""
        emptied: list[str] = []
        for sub in list(self._subs.get(envelope.channel, ())):
            if not sub.offer(envelope):
                sub.lose("subscriber fell behind (queue full)")
                emptied += self.remove(sub)
        return emptied

    def lose_all(self, reason: str) -> None:
        for sub in self._all():
            sub.lose(reason)
        self._subs.clear()

    def end_all(self) -> None:
        for sub in self._all():
            sub.end()
        self._subs.clear()

    def _all(self) -> list[QueueSubscription]:
        return list(dict.fromkeys(sub for subs in self._subs.values() for sub in subs))


class MemoryBroker:
    """Broker for one process. `clock` (seconds, monotonic) is injectable so tests can control TTLs."""

    def __init__(self, *, max_queue: int = DEFAULT_MAX_QUEUE, clock: Callable[[], float] = time.monotonic) -> None:
        self._fanout = Fanout()
        self._max_queue = max_queue
        self._clock = clock
        self._presence: dict[str, dict[str, float]] = {}  # room -> member -> expiry
        self._windows: dict[str, tuple[float, int]] = {}  # key -> (window end, hits)
        self._prune_at = 1024
        self._closed = False

    async def publish(self, envelope: Envelope) -> None:
        self._check_open()
        self._fanout.deliver(envelope)

    async def subscribe(self, channels: Sequence[str]) -> QueueSubscription:
        self._check_open()
        sub = QueueSubscription(channels, maxsize=self._max_queue, on_close=self._release)
        self._fanout.add(sub)
        return sub

    async def set_presence(self, room: str, members: Sequence[str], ttl: float) -> None:
        expiry = self._clock() + ttl
        present = self._presence.setdefault(room, {})
        for member in check_members(members):
            present[member] = expiry

    async def clear_presence(self, room: str, member: str) -> None:
        self._presence.get(room, {}).pop(member, None)

    async def presence(self, room: str) -> list[str]:
        now = self._clock()
        members = {m: exp for m, exp in self._presence.get(room, {}).items() if exp > now}
        if members:
            self._presence[room] = members
        else:
            self._presence.pop(room, None)  # forget empty rooms so the dict cannot grow forever
        return sorted(members)

    async def hit_rate_limit(self, key: str, limit: int, window_s: float) -> float:
        now = self._clock()
        end, hits = self._windows.get(key, (-math.inf, 0))
        if end <= now:
            self._prune(now)
            end, hits = now + window_s, 0
        self._windows[key] = (end, hits + 1)
        return 0.0 if hits + 1 <= limit else end - now

    def _prune(self, now: float) -> None:
        # Amortised O(1) cleanup of finished windows: rebuild only when the dict doubled since the last one.
        if len(self._windows) > self._prune_at:
            self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
            self._prune_at = max(1024, 2 * len(self._windows))

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._closed = True
        self._fanout.end_all()

    async def _release(self, sub: QueueSubscription) -> None:
        self._fanout.remove(sub)

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerUnavailable("broker is closed")
