"""The Broker Protocol: notifications, presence and rate limits, after message_bus `backends/base.rb`.

Services receive a `Broker` as an argument; the concrete class (MemoryBroker, RedisBroker) is chosen
only in `resources.py` (STYLE.md C2). The broker carries notifications; the database holds the truth,
so anything lost here is recovered by resuming from the database with `last_seq`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Protocol

from supportswarm.realtime.protocol import Envelope


class BrokerError(Exception):
    """Base class of broker failures."""


class BrokerUnavailable(BrokerError):
    """The backend cannot be reached; raised quickly instead of hanging the caller."""


class SubscriptionLost(BrokerError):
    """Raised by a subscription's iterator when notifications may have been dropped.

    Causes: the subscriber fell behind its bounded queue, or the broker connection dropped.
    The consumer must resubscribe, then read what it missed from the database.
    """


class Subscription(Protocol):
    """A live subscription: `async for envelope in sub`, ended by `close()` or `async with`."""

    def __aiter__(self) -> AsyncIterator[Envelope]:
        """Iterate envelopes in publish order (per channel); raises SubscriptionLost if any were dropped."""
        ...

    async def close(self) -> None:
        """Stop delivery and release the channels; iteration then ends. Idempotent."""
        ...

    async def __aenter__(self) -> Subscription:
        """Return the subscription itself."""
        ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the subscription."""
        ...


class Broker(Protocol):
    """Publish/subscribe notifications, TTL presence and rate-limit counters."""

    async def publish(self, envelope: Envelope) -> None:
        """Publish `envelope` on `envelope.channel` to every current subscriber of that channel.

        A notification only: callers store the data (and its `seq`) in the database first, and
        publish after the transaction commits. Delivery is at-most-once; subscribers recover gaps
        from the database. Raises BrokerUnavailable if the backend is down (never blocks on a slow
        subscriber).
        """
        ...

    async def subscribe(self, channels: Sequence[str]) -> Subscription:
        """Subscribe to one or more channels.

        The subscription is effective when this returns: every envelope published afterwards on
        one of `channels` is delivered (or the iterator raises SubscriptionLost). Resume relies on
        this: subscribe first, then read the backlog from the database. Raises ValueError for an
        empty `channels` and BrokerUnavailable if the backend cannot confirm the subscription.
        """
        ...

    async def set_presence(self, room: str, members: Sequence[str], ttl: float) -> None:
        """Mark `members` present in `room` for `ttl` seconds; refresh before it expires to stay present.

        One call for all of a room's members in this process (a list, not a single string). Presence
        expires by itself, so the members of a killed process disappear without cleanup.
        """
        ...

    async def clear_presence(self, room: str, member: str) -> None:
        """Remove `member` from `room` now (e.g. on a clean disconnect). No error if absent."""
        ...

    async def presence(self, room: str) -> list[str]:
        """Return the members of `room` whose presence has not expired, sorted."""
        ...

    async def hit_rate_limit(self, key: str, limit: int, window_s: float) -> float:
        """Count one hit on `key` in a fixed window of `window_s` seconds.

        Returns 0.0 while at most `limit` hits fell in the current window, otherwise the seconds
        until the window resets (a Retry-After value, > 0).
        """
        ...

    async def ping(self) -> bool:
        """Return True when the backend is reachable (health checks); never raises."""
        ...

    async def close(self) -> None:
        """Release connections and end every open subscription's iteration. Idempotent."""
        ...
