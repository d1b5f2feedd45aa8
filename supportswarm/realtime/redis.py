"""Redis broker: PUBLISH/SUBSCRIBE notifications, TTL presence and rate limits, after message_bus `redis.rb`.

One pub/sub connection per broker, read by one task that fans out to local bounded queues. Pub/sub is
at-most-once: when that connection drops, every live subscription raises SubscriptionLost (its consumer
resumes from the database) and the reader reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError

from supportswarm.realtime.broker import BrokerUnavailable
from supportswarm.realtime.memory import DEFAULT_MAX_QUEUE, Fanout, QueueSubscription, check_members
from supportswarm.realtime.protocol import Envelope, decode, encode

log = logging.getLogger(__name__)

_NET_ERRORS = (RedisError, OSError)
_MIN_BACKOFF, _MAX_BACKOFF = 0.1, 5.0

# Presence: a sorted set per room, score = expiry. The time comes from Redis (TIME) so replicas with
# skewed clocks agree; the key itself expires with its last member.
_NOW = "local t = redis.call('TIME') local now = string.format('%.6f', t[1] + t[2] / 1000000)"
_SET_PRESENCE = f"""{_NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local expiry = string.format('%.6f', now + ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], expiry, ARGV[i]) end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
return redis.call('PEXPIREAT', KEYS[1], math.ceil(last[2] * 1000))"""
_PRESENCE = f"""{_NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)"""
# Fixed window: the first hit starts the window's TTL; over the limit, the TTL left is the Retry-After.
_RATE_LIMIT = """local hits = redis.call('INCR', KEYS[1])
if hits == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if hits <= tonumber(ARGV[1]) then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return tonumber(ARGV[2]) end
return math.max(ttl, 1)"""


class RedisBroker:
    """Broker over Redis. `namespace` prefixes every key and channel: pub/sub ignores the database
    number, so deployments (or test runs) sharing one Redis need distinct namespaces."""

    def __init__(self, client: Redis, *, namespace: str, max_queue: int, timeout: float, health_interval: float):
        self._client, self._ns, self._max_queue = client, namespace, max_queue
        self._timeout, self._health_interval = timeout, health_interval
        self._fanout = Fanout()
        self._lock = asyncio.Lock()  # orders SUBSCRIBE/UNSUBSCRIBE with the fan-out registry
        self._conn: AbstractConnection | None = None
        self._confirmed: dict[str, asyncio.Future[bool]] = {}  # channel -> subscribe confirmed?
        self._acks: dict[str, int] = {}  # channel -> SUBSCRIBE replies still expected on this connection
        self._reader: asyncio.Task[None] | None = None
        self._closed = False
        scripts = (client.register_script(lua) for lua in (_SET_PRESENCE, _PRESENCE, _RATE_LIMIT))
        self._set_presence, self._presence, self._rate_limit = scripts

    @classmethod
    def from_url(
        cls, url: str, *, namespace: str = "supportswarm:", max_queue: int = DEFAULT_MAX_QUEUE,
        timeout: float = 2.0, health_interval: float = 15.0, **redis_kwargs: Any,
    ) -> RedisBroker:  # fmt: skip
        """Connect lazily to `url`. `timeout` bounds every call, so a dead Redis fails fast instead of hanging;
        after `health_interval` idle seconds the pub/sub reader PINGs to detect a silent partition."""
        redis_kwargs = {"socket_timeout": timeout, "socket_connect_timeout": min(timeout, 1.0)} | redis_kwargs
        client = Redis.from_url(url, **redis_kwargs)
        return cls(client, namespace=namespace, max_queue=max_queue, timeout=timeout, health_interval=health_interval)

    async def publish(self, envelope: Envelope) -> None:
        self._check_open()
        await self._call(self._client.publish(self._ns + envelope.channel, encode(envelope)))

    async def subscribe(self, channels: Sequence[str]) -> QueueSubscription:
        self._check_open()
        sub = QueueSubscription(channels, maxsize=self._max_queue, on_close=self._release)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._run(), name="redis-broker-reader")
        try:
            if await self._confirm(sub):
                return sub
            raise BrokerUnavailable("redis did not confirm the subscription")
        except BaseException:  # also on cancellation: never leave a half-made subscription registered
            await sub.close()
            raise

    async def _confirm(self, sub: QueueSubscription) -> bool:
        """Register `sub` and wait until Redis confirmed SUBSCRIBE for all its channels."""
        try:
            async with self._lock:
                added = self._fanout.add(sub)
                loop = asyncio.get_running_loop()
                waits = [self._confirmed.setdefault(ch, loop.create_future()) for ch in sub.channels]
                if added and self._conn is not None:  # else the reader subscribes when it (re)connects
                    await self._send_subscribe(self._conn, added)
            # asyncio.wait does not cancel the (shared) futures on timeout, unlike wait_for/gather.
            done, pending = await asyncio.wait(waits, timeout=self._timeout)
            return not pending and all(fut.result() for fut in done)
        except _NET_ERRORS:
            return False

    async def set_presence(self, room: str, members: Sequence[str], ttl: float) -> None:
        if check_members(members):
            await self._call(self._set_presence(keys=[f"{self._ns}presence:{room}"], args=[ttl, *members]))

    async def clear_presence(self, room: str, member: str) -> None:
        await self._call(self._client.zrem(f"{self._ns}presence:{room}", member))

    async def presence(self, room: str) -> list[str]:
        members = await self._call(self._presence(keys=[f"{self._ns}presence:{room}"]))
        return sorted(map(_text, members))

    async def hit_rate_limit(self, key: str, limit: int, window_s: float) -> float:
        window_ms = max(1, math.ceil(window_s * 1000))
        wait_ms = await self._call(self._rate_limit(keys=[f"{self._ns}ratelimit:{key}"], args=[limit, window_ms]))
        return int(wait_ms) / 1000

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except _NET_ERRORS:
            return False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._fanout.end_all()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.wait([self._reader])  # unlike `await task`, does not re-raise CancelledError
        await self._client.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerUnavailable("broker is closed")

    async def _call(self, awaitable: Any) -> Any:
        """Await a Redis command, turning connection failures into BrokerUnavailable."""
        try:
            return await awaitable
        except _NET_ERRORS as exc:
            raise BrokerUnavailable(f"redis: {exc}") from exc

    async def _send_subscribe(self, conn: AbstractConnection, channels: list[str]) -> None:
        for ch in channels:
            self._acks[ch] = self._acks.get(ch, 0) + 1
        await conn.send_command("SUBSCRIBE", *(self._ns + ch for ch in channels), check_health=False)

    async def _release(self, sub: QueueSubscription) -> None:
        async with self._lock:
            await self._unsubscribe(self._fanout.remove(sub))

    async def _unsubscribe(self, channels: list[str]) -> None:
        """UNSUBSCRIBE from `channels` that still have no local subscriber. The caller holds the lock."""
        gone = [ch for ch in channels if not self._fanout.has(ch)]  # re-check: someone may have rejoined
        for ch in gone:
            _resolve(self._confirmed.pop(ch, None), False)
        if not gone or self._conn is None or self._closed:
            return
        try:
            await self._conn.send_command("UNSUBSCRIBE", *(self._ns + ch for ch in gone), check_health=False)
        except _NET_ERRORS as exc:  # the reader sees the broken connection and reconnects
            log.debug("UNSUBSCRIBE failed: %s", exc)

    async def _run(self) -> None:
        """Reader task: connect, read until the connection breaks, mark subscriptions lost, back off."""
        delay = _MIN_BACKOFF
        while not self._closed:
            conn = self._client.connection_pool.connection_class(**self._client.connection_pool.connection_kwargs)
            try:
                await conn.connect()  # type: ignore[no-untyped-call]  # untyped in redis-py 5
                await self._attach(conn)
                delay = _MIN_BACKOFF
                await self._read(conn)
            except Exception as exc:  # broad on purpose: the reader must survive anything and reconnect
                log.warning("redis pub/sub connection lost (%r); reconnecting in %.1fs", exc, delay)
            finally:
                self._detach()  # synchronously, before any await lets a subscriber use `conn`
                await conn.disconnect(nowait=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF)

    async def _attach(self, conn: AbstractConnection) -> None:
        async with self._lock:
            self._conn = conn
            self._acks.clear()
            if channels := self._fanout.channels():  # subscribed while disconnected; still waiting
                await self._send_subscribe(conn, channels)

    def _detach(self) -> None:
        self._conn = None
        for fut in self._confirmed.values():
            _resolve(fut, False)
        self._confirmed.clear()
        self._fanout.lose_all("redis pub/sub connection lost")

    async def _read(self, conn: AbstractConnection) -> None:
        # A silent network partition never errors, so probe with PING after `health_interval` idle.
        probing = False
        while True:
            reply = await conn.read_response(timeout=self._health_interval, disconnect_on_error=False)
            if reply is None:
                if probing:
                    raise ConnectionError("redis did not answer PING")
                probing = True
                await conn.send_command("PING", check_health=False)
                continue
            probing = False
            await self._dispatch(reply)

    async def _dispatch(self, reply: Any) -> None:
        if not isinstance(reply, list) or len(reply) < 2:
            return  # PONG outside subscribed mode
        kind, channel = _text(reply[0]), _text(reply[1]).removeprefix(self._ns)
        if kind == "subscribe":
            self._acks[channel] = self._acks.get(channel, 1) - 1
            # Only the last expected reply counts: an earlier SUBSCRIBE may have been undone by an UNSUBSCRIBE.
            if self._acks[channel] <= 0:
                _resolve(self._confirmed.get(channel), True)
        elif kind == "message":
            try:
                envelope = decode(reply[2])
            except ValueError as exc:  # a publisher bug; the data is in the database, so log and go on
                log.warning("dropping malformed envelope on %s: %s", channel, exc)
                return
            if envelope.channel == channel and (emptied := self._fanout.deliver(envelope)):
                async with self._lock:  # slow subscribers were dropped: stop receiving unheard channels
                    await self._unsubscribe(emptied)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _resolve(fut: asyncio.Future[bool] | None, ok: bool) -> None:
    if fut is not None and not fut.done():
        fut.set_result(ok)
