"""Broker parity: every behaviour runs against MemoryBroker and RedisBroker (message_bus `backend_spec`)."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import NamedTuple

import pytest
from redis.asyncio import Redis

from supportswarm.realtime.broker import Broker, BrokerUnavailable, Subscription, SubscriptionLost
from supportswarm.realtime.memory import MemoryBroker, QueueSubscription
from supportswarm.realtime.protocol import (
    ACCOUNTS_CHANNEL,
    INBOX_CHANNEL,
    CloseCode,
    Envelope,
    EventType,
    FrameType,
    decode,
    encode,
    swarm_channel,
    user_channel,
)
from supportswarm.realtime.redis import RedisBroker

REDIS_URL = os.environ.get("SUPPORTSWARM_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")

MakeBroker = Callable[..., Awaitable[Broker]]


class RedisCase(NamedTuple):
    broker: RedisBroker
    admin: Redis  # decode_responses=True
    name: str  # client name and namespace prefix of `broker`


# --- helpers ---------------------------------------------------------------------------------------


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout_s: float = 2.0) -> None:
    """Poll `predicate` until it holds; bounded, so a broken broker fails instead of hanging."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.02)


async def take(sub: Subscription, n: int, timeout_s: float = 2.0) -> list[Envelope]:
    """The next `n` envelopes of `sub`, failing after `timeout_s` instead of hanging."""
    received: list[Envelope] = []
    async with asyncio.timeout(timeout_s):
        async for envelope in sub:
            received.append(envelope)
            if len(received) == n:
                break
    return received


def note(channel: str, n: int) -> Envelope:
    return Envelope(channel=channel, type="message", op="add", data={"n": n}, seq=n)


def public_methods(cls: type) -> dict[str, list[tuple[str, object, object]]]:
    """Public instance methods -> parameters (name, kind, default); classmethods like from_url excluded."""
    return {
        name: [(p.name, p.kind, p.default) for p in inspect.signature(member).parameters.values()]
        for name, member in vars(cls).items()
        if not name.startswith("_") and inspect.isfunction(member)
    }


async def flush_test_db() -> None:
    client = Redis.from_url(REDIS_URL)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
async def make_broker(request: pytest.FixtureRequest) -> AsyncIterator[MakeBroker]:
    """Factory closing every broker it built. Redis brokers get a fresh namespace: pub/sub ignores the db."""
    kind: str = request.param
    namespace = f"test-{uuid.uuid4().hex[:12]}:"
    created: list[Broker] = []
    if kind == "redis":
        await flush_test_db()

    async def make(max_queue: int = 1000) -> Broker:
        broker: Broker
        if kind == "memory":
            broker = MemoryBroker(max_queue=max_queue)
        else:
            broker = RedisBroker.from_url(REDIS_URL, namespace=namespace, max_queue=max_queue)
        created.append(broker)
        return broker

    yield make
    for broker in created:
        await broker.close()


@pytest.fixture
async def broker(make_broker: MakeBroker) -> Broker:
    return await make_broker()


@pytest.fixture
async def redis_broker() -> AsyncIterator[RedisCase]:
    """A RedisBroker with a unique client name (to find its pub/sub connection) and an admin client."""
    await flush_test_db()
    name = f"test-{uuid.uuid4().hex[:12]}"
    broker = RedisBroker.from_url(REDIS_URL, namespace=f"{name}:", client_name=name)
    admin = Redis.from_url(REDIS_URL, decode_responses=True)
    yield RedisCase(broker, admin, name)
    await broker.close()
    await admin.aclose()


# --- parity ----------------------------------------------------------------------------------------


def test_public_methods_match_the_protocol() -> None:
    expected = public_methods(Broker)
    assert set(expected) == {
        "publish", "subscribe", "set_presence", "clear_presence", "presence", "hit_rate_limit", "ping", "close",
    }  # fmt: skip
    assert public_methods(MemoryBroker) == expected
    assert public_methods(RedisBroker) == expected
    assert public_methods(QueueSubscription).keys() >= public_methods(Subscription).keys() == {"close"}
    for dunder in ("__aiter__", "__anext__", "__aenter__", "__aexit__"):
        assert inspect.isfunction(getattr(QueueSubscription, dunder))


# --- publish / subscribe ---------------------------------------------------------------------------


async def test_publish_delivers_to_every_subscriber_in_order(broker: Broker) -> None:
    channel = swarm_channel(1)
    first, second = await broker.subscribe([channel]), await broker.subscribe([channel])
    sent = [note(channel, n) for n in range(20)]
    for envelope in sent:
        await broker.publish(envelope)
    assert await take(first, 20) == sent
    assert await take(second, 20) == sent


async def test_subscription_covers_several_channels(broker: Broker) -> None:
    sub = await broker.subscribe([swarm_channel(1), user_channel(2), INBOX_CHANNEL])
    sent = [note(swarm_channel(1), 1), note(user_channel(2), 2), note(INBOX_CHANNEL, 3), note(swarm_channel(1), 4)]
    for envelope in sent:
        await broker.publish(envelope)
    assert await take(sub, 4) == sent


async def test_channels_are_isolated(broker: Broker) -> None:
    sub = await broker.subscribe([swarm_channel(1)])
    await broker.publish(note(swarm_channel(2), 1))
    await broker.publish(note(swarm_channel(1), 2))  # a marker: anything from swarm:2 would arrive first
    assert await take(sub, 1) == [note(swarm_channel(1), 2)]


async def test_closed_subscription_stops_delivery(broker: Broker) -> None:
    channel = swarm_channel(1)
    closed, open_ = await broker.subscribe([channel]), await broker.subscribe([channel])
    await closed.close()
    await closed.close()  # idempotent
    await broker.publish(note(channel, 1))
    assert await take(open_, 1) == [note(channel, 1)]
    assert [envelope async for envelope in closed] == []


async def test_async_with_closes_the_subscription(broker: Broker) -> None:
    async with await broker.subscribe([swarm_channel(1)]) as sub:
        await broker.publish(note(swarm_channel(1), 1))
        assert await take(sub, 1) == [note(swarm_channel(1), 1)]
    await broker.publish(note(swarm_channel(1), 2))
    assert [envelope async for envelope in sub] == []


async def test_resubscribing_to_a_released_channel_is_effective(broker: Broker) -> None:
    channel = swarm_channel(1)
    for n in range(3):  # exercises UNSUBSCRIBE followed by a fresh SUBSCRIBE on Redis
        async with await broker.subscribe([channel]) as sub:
            await broker.publish(note(channel, n))
            assert await take(sub, 1) == [note(channel, n)]


async def test_concurrent_subscribes_and_closes_stay_consistent(broker: Broker) -> None:
    # Interleaved subscribe/close on shared channels exercises the Redis refcounts and confirmations.
    subs = await asyncio.gather(*(broker.subscribe([swarm_channel(i % 5)]) for i in range(50)))
    more = asyncio.gather(*(broker.subscribe([swarm_channel(i % 5)]) for i in range(50)))
    await asyncio.gather(*(sub.close() for sub in subs[::2]))
    subs += await more
    for room in range(5):
        await broker.publish(note(swarm_channel(room), room))
    for i, sub in enumerate(subs):
        expected = [] if i < 50 and i % 2 == 0 else [note(swarm_channel(i % 5), i % 5)]
        assert await take(sub, 1) == expected


async def test_subscribe_needs_channels(broker: Broker) -> None:
    with pytest.raises(ValueError):
        await broker.subscribe([])


async def test_slow_subscriber_is_dropped_without_blocking_publish(make_broker: MakeBroker) -> None:
    broker = await make_broker(max_queue=5)
    slow, probe = await broker.subscribe([swarm_channel(1)]), await broker.subscribe([swarm_channel(2)])
    async with asyncio.timeout(2):  # publishing never waits for a subscriber
        for n in range(20):
            await broker.publish(note(swarm_channel(1), n))
    await broker.publish(note(swarm_channel(2), 0))
    await take(probe, 1)  # everything published before the probe has been fanned out
    with pytest.raises(SubscriptionLost):
        await take(slow, 20)
    # The consumer resubscribes (then reads the gap from the database) and is live again.
    async with await broker.subscribe([swarm_channel(1)]) as again:
        await broker.publish(note(swarm_channel(1), 99))
        assert await take(again, 1) == [note(swarm_channel(1), 99)]


async def test_close_ends_subscriptions_and_refuses_publish(broker: Broker) -> None:
    sub = await broker.subscribe([swarm_channel(1)])
    await broker.close()
    assert [envelope async for envelope in sub] == []
    with pytest.raises(BrokerUnavailable):
        await broker.publish(note(swarm_channel(1), 1))
    await broker.close()  # idempotent


async def test_ping(broker: Broker) -> None:
    assert await broker.ping() is True


# --- presence --------------------------------------------------------------------------------------


async def test_presence_set_list_clear(broker: Broker) -> None:
    await broker.set_presence("swarm:1", ["bob"], ttl=30)
    await broker.set_presence("swarm:1", ["alice"], ttl=30)
    await broker.set_presence("swarm:1", ["alice"], ttl=30)  # refresh, not a duplicate
    await broker.set_presence("swarm:2", ["carol"], ttl=30)
    assert await broker.presence("swarm:1") == ["alice", "bob"]
    await broker.clear_presence("swarm:1", "alice")
    await broker.clear_presence("swarm:1", "nobody")
    assert await broker.presence("swarm:1") == ["bob"]
    assert await broker.presence("swarm:2") == ["carol"]
    assert await broker.presence("swarm:3") == []


async def test_presence_of_many_members_in_one_call(broker: Broker) -> None:
    await broker.set_presence("swarm:1", ["carol", "alice", "bob"], ttl=30)
    await broker.set_presence("swarm:1", [], ttl=30)  # a room with no local members: nothing to do
    assert await broker.presence("swarm:1") == ["alice", "bob", "carol"]
    with pytest.raises(TypeError):
        await broker.set_presence("swarm:1", "dave", ttl=30)  # one string would be four members d, a, v, e
    assert await broker.presence("swarm:1") == ["alice", "bob", "carol"]


async def test_presence_expires_by_itself(broker: Broker) -> None:
    await broker.set_presence("swarm:1", ["ghost"], ttl=0.2)
    await broker.set_presence("swarm:1", ["alice"], ttl=30)
    assert await broker.presence("swarm:1") == ["alice", "ghost"]

    async def ghost_gone() -> bool:
        return await broker.presence("swarm:1") == ["alice"]

    await wait_for(ghost_gone)


async def test_memory_presence_follows_the_injected_clock() -> None:
    now = [100.0]
    broker = MemoryBroker(clock=lambda: now[0])
    await broker.set_presence("room", ["alice"], ttl=10)
    now[0] = 109.9
    assert await broker.presence("room") == ["alice"]
    now[0] = 110.0
    assert await broker.presence("room") == []


# --- rate limits -----------------------------------------------------------------------------------


async def test_rate_limit_allows_limit_then_returns_retry_after(broker: Broker) -> None:
    assert [await broker.hit_rate_limit("say:1", limit=3, window_s=10) for _ in range(3)] == [0.0, 0.0, 0.0]
    retry_after = await broker.hit_rate_limit("say:1", limit=3, window_s=10)
    assert 0 < retry_after <= 10
    assert await broker.hit_rate_limit("say:2", limit=3, window_s=10) == 0.0  # keys are independent


async def test_rate_limit_window_resets(broker: Broker) -> None:
    assert await broker.hit_rate_limit("k", limit=1, window_s=0.2) == 0.0
    assert 0 < await broker.hit_rate_limit("k", limit=1, window_s=0.2) <= 0.2

    async def allowed_again() -> bool:
        return await broker.hit_rate_limit("k", limit=1, window_s=0.2) == 0.0

    await wait_for(allowed_again)


async def test_memory_rate_limit_retry_after_is_the_rest_of_the_window() -> None:
    now = [0.0]
    broker = MemoryBroker(clock=lambda: now[0])
    assert await broker.hit_rate_limit("k", limit=1, window_s=60) == 0.0
    now[0] = 15.0
    assert await broker.hit_rate_limit("k", limit=1, window_s=60) == 45.0
    now[0] = 60.0
    assert await broker.hit_rate_limit("k", limit=1, window_s=60) == 0.0


# --- Redis failure handling ------------------------------------------------------------------------


async def test_redis_connection_drop_marks_subscriptions_lost_then_recovers(
    redis_broker: RedisCase,
) -> None:
    broker, admin, name = redis_broker
    sub = await broker.subscribe([swarm_channel(1)])
    await broker.subscribe([swarm_channel(2)])
    ours = await pubsub_clients(admin, name)
    assert len(ours) == 1  # one shared pub/sub connection, however many subscriptions
    await admin.client_kill_filter(_id=ours[0]["id"])
    with pytest.raises(SubscriptionLost):
        await take(sub, 1)
    async with await broker.subscribe([swarm_channel(1)]) as again:  # waits for the reader to reconnect
        await broker.publish(note(swarm_channel(1), 1))
        assert await take(again, 1) == [note(swarm_channel(1), 1)]


async def test_redis_reader_pings_an_idle_connection(redis_broker: RedisCase) -> None:
    admin = redis_broker.admin
    name = f"test-{uuid.uuid4().hex[:12]}"
    broker = RedisBroker.from_url(REDIS_URL, namespace=f"{name}:", client_name=name, health_interval=0.05)
    try:
        sub = await broker.subscribe([swarm_channel(1)])

        async def pinged() -> bool:
            return [c["cmd"] for c in await pubsub_clients(admin, name)] == ["ping"]

        await wait_for(pinged)
        await broker.publish(note(swarm_channel(1), 1))
        assert await take(sub, 1) == [note(swarm_channel(1), 1)]
    finally:
        await broker.close()


async def test_redis_releases_channels_nobody_listens_to(redis_broker: RedisCase) -> None:
    broker, admin, name = redis_broker
    channel = f"{name}:{swarm_channel(1)}"

    async def listeners() -> int:
        return int(dict(await admin.pubsub_numsub(channel))[channel])

    first, second = await broker.subscribe([swarm_channel(1)]), await broker.subscribe([swarm_channel(1)])
    assert await listeners() == 1  # refcounted: one Redis subscription for both
    await first.close()
    assert await listeners() == 1
    await second.close()

    async def released() -> bool:
        return await listeners() == 0

    await wait_for(released)


async def test_redis_unreachable_fails_fast() -> None:
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    broker = RedisBroker.from_url(f"redis://127.0.0.1:{port}/0", timeout=0.5)
    try:
        async with asyncio.timeout(5):
            assert await broker.ping() is False
            with pytest.raises(BrokerUnavailable):
                await broker.publish(note(swarm_channel(1), 1))
            with pytest.raises(BrokerUnavailable):
                await broker.subscribe([swarm_channel(1)])
            with pytest.raises(BrokerUnavailable):
                await broker.hit_rate_limit("k", limit=1, window_s=1)
            with pytest.raises(BrokerUnavailable):
                await broker.presence("swarm:1")
    finally:
        await broker.close()


async def pubsub_clients(admin: Redis, client_name: str) -> list[dict[str, str]]:
    """CLIENT LIST entries of the pub/sub connection(s) named `client_name`."""
    return [c for c in await admin.client_list() if c["name"] == client_name and c["sub"] != "0"]


# --- protocol --------------------------------------------------------------------------------------


def test_envelope_round_trips() -> None:
    envelope = Envelope(channel="swarm:7", type="message", op="add", data={"body": "héllo", "n": [1]}, seq=42)
    assert decode(encode(envelope)) == envelope
    assert decode(encode(envelope).encode()) == envelope
    ephemeral = Envelope(channel="swarm:7", type="typing", data={})
    assert decode(encode(ephemeral)) == ephemeral


def test_envelope_data_is_encoded_once() -> None:
    envelope = Envelope(channel="swarm:7", type="message", data={"type": "message", "body": "héllo"}, seq=1)
    text = envelope.data_json()
    assert text == '{"type":"message","body":"héllo"}' and json.loads(text) == envelope.data
    assert envelope.data_json() is text, "every subscriber's socket gets the one encoding"
    assert envelope == Envelope(channel="swarm:7", type="message", data={"type": "message", "body": "héllo"}, seq=1)


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"\xff\xfe",
        "[]",
        '{"type": "message"}',
        '{"channel": 1, "type": "message"}',
        '{"channel": "a", "type": "message", "data": []}',
        '{"channel": "a", "type": "message", "seq": true}',
        '{"channel": "a", "type": "message", "seq": "1"}',
    ],
)
def test_decode_rejects_garbage(raw: str | bytes) -> None:
    with pytest.raises(ValueError):
        decode(raw)


def test_channel_names_and_codes() -> None:
    assert (swarm_channel(3), user_channel(4), INBOX_CHANNEL, ACCOUNTS_CHANNEL) == ("swarm:3", "user:4", "inbox",
                                                                                    "accounts")
    assert {*FrameType} == {"hello", "say", "typing", "mark_solution", "leave"}
    assert {*EventType} == {"welcome", "message", "presence", "typing", "resolved", "error", "heartbeat", "reconnect",
                            "message_update"}
    assert (CloseCode.NOT_AUTHENTICATED, CloseCode.SLOW_CONSUMER, CloseCode.GOING_AWAY) == (4401, 4008, 4001)
