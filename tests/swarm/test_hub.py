"""The per-process hub with fake sockets: slow consumers, heartbeats, lifetime, shutdown (STYLE.md C5.5)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from supportswarm.realtime.hub import Hub, HubConfig
from supportswarm.realtime.protocol import CloseCode
from tests.swarm.helpers import wait_for


class FakeSocket:
    def __init__(self, *, stall: bool = False, broken: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed: int | None = None
        self.stall = asyncio.Event() if stall else None
        self.broken = broken

    async def send_text(self, data: str) -> None:
        if self.broken:
            raise ConnectionResetError("the client is gone")
        if self.stall is not None:
            await self.stall.wait()
        self.sent.append(json.loads(data))

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed = code


def config(**kw: Any) -> HubConfig:
    base: dict[str, Any] = {"queue_size": 4, "heartbeat_s": 60.0, "heartbeat_jitter_s": 0.0, "max_lifetime_s": 60.0}
    return HubConfig(**(base | kw))


async def test_frames_are_sent_in_order() -> None:
    sock = FakeSocket()
    async with Hub(config()).connect(sock) as conn:
        for i in range(3):
            assert conn.push({"type": "message", "seq": i + 1})

        async def sent_all() -> bool:
            return len(sock.sent) == 3

        await wait_for(sent_all)
    assert [f["seq"] for f in sock.sent] == [1, 2, 3] and sock.closed == 1000


async def test_an_encoded_frame_is_sent_as_is() -> None:
    """Fan-out encodes a frame once and pushes the same text to every socket."""
    socks = [FakeSocket(), FakeSocket()]
    text = '{"type":"message","seq":1,"body":"h\u00e9"}'
    hub = Hub(config())
    async with hub.connect(socks[0]) as first, hub.connect(socks[1]) as second:
        assert first.push(text) and second.push(text)
        await first.put({"type": "message", "seq": 2})

        async def sent() -> bool:
            return len(socks[0].sent) == 2 and len(socks[1].sent) == 1

        await wait_for(sent)
    assert socks[0].sent == [{"type": "message", "seq": 1, "body": "hé"}, {"type": "message", "seq": 2}]
    assert socks[1].sent == [{"type": "message", "seq": 1, "body": "hé"}]


async def test_a_frame_for_an_idle_socket_is_written_at_once() -> None:
    sock = FakeSocket()
    async with Hub(config()).connect(sock) as conn:
        await asyncio.sleep(0)  # the writer is parked on its empty queue
        assert conn.push({"type": "message", "seq": 1})
        assert sock.sent == [{"type": "message", "seq": 1}], "written in the pusher's task, no hop to the writer"


async def test_a_send_that_must_wait_finishes_in_a_task_and_later_frames_follow_it() -> None:
    sock = FakeSocket(stall=True)
    async with Hub(config()).connect(sock) as conn:
        await asyncio.sleep(0)
        assert all(conn.push({"type": "message", "seq": seq}) for seq in (1, 2, 3))
        await asyncio.sleep(0.05)
        assert sock.sent == [], "the first send waits on the socket; the others wait behind it"
        assert sock.stall is not None
        sock.stall.set()

        async def sent_all() -> bool:
            return len(sock.sent) == 3

        await wait_for(sent_all)
    assert [f["seq"] for f in sock.sent] == [1, 2, 3]


async def test_a_failed_write_closes_the_connection() -> None:
    sock = FakeSocket(broken=True)
    async with Hub(config()).connect(sock) as conn:
        await asyncio.sleep(0)
        assert conn.push({"type": "message", "seq": 1}) is False
        await asyncio.wait_for(conn.closed.wait(), 2)
    assert conn.close_code == 1006


async def test_a_slow_consumer_is_closed_with_4008_without_blocking_the_pusher() -> None:
    hub = Hub(config())
    slow, fast = FakeSocket(stall=True), FakeSocket()
    async with hub.connect(slow) as slow_conn, hub.connect(fast) as fast_conn:
        results = [slow_conn.push({"seq": i}) for i in range(10)]  # never awaits: fan-out is not blocked
        assert results[:4] == [True] * 4 and results[-1] is False
        await asyncio.wait_for(slow_conn.closed.wait(), 2)
        assert slow_conn.close_code == CloseCode.SLOW_CONSUMER
        assert all(fast_conn.push({"seq": i}) for i in range(4)), "other sockets are unaffected"

        async def done() -> bool:
            return len(fast.sent) == 4 and slow.closed is not None

        await wait_for(done)
    assert slow.closed == CloseCode.SLOW_CONSUMER


async def test_idle_connections_get_heartbeats() -> None:
    sock = FakeSocket()
    async with Hub(config(heartbeat_s=0.05)).connect(sock):
        async def beats() -> bool:
            return sum(1 for f in sock.sent if f["type"] == "heartbeat") >= 2

        await wait_for(beats)


async def test_lifetime_ends_with_reconnect_and_4001() -> None:
    sock = FakeSocket()
    async with Hub(config(max_lifetime_s=0.1)).connect(sock) as conn:
        await asyncio.wait_for(conn.closed.wait(), 2)
    assert sock.sent[-1] == {"type": "reconnect", "reason": "lifetime"} and sock.closed == CloseCode.GOING_AWAY


async def test_shutdown_sends_reconnect_to_every_socket_and_refuses_new_ones() -> None:
    hub = Hub(config())
    socks = [FakeSocket(), FakeSocket()]
    async with hub.connect(socks[0]), hub.connect(socks[1]):
        assert len(hub) == 2
        await hub.shutdown()
    assert all(s.sent[-1]["type"] == "reconnect" and s.closed == CloseCode.GOING_AWAY for s in socks)
    late = FakeSocket()
    try:
        async with hub.connect(late):
            raise AssertionError("a stopping hub must not take connections")
    except Exception as exc:
        assert "shutting down" in str(exc)
    assert late.closed == CloseCode.GOING_AWAY


async def test_close_user_ends_only_that_users_sockets_with_reconnect() -> None:
    hub = Hub(config())
    mine, also_mine, theirs = FakeSocket(), FakeSocket(), FakeSocket()
    async with hub.connect(mine, user_id=1), hub.connect(also_mine, user_id=1), hub.connect(theirs, user_id=2):
        assert await hub.close_user(1, "account") == 2
        assert await hub.close_user(3, "account") == 0
    assert mine.sent[-1] == also_mine.sent[-1] == {"type": "reconnect", "reason": "account"}
    assert mine.closed == also_mine.closed == CloseCode.GOING_AWAY
    assert theirs.sent == [] and theirs.closed == 1000, "closed only when its own session ended"
    assert hub._by_user == {}, "the index forgets closed sockets"


async def test_a_write_that_waited_and_then_failed_closes_the_connection() -> None:
    class GoneWhileWaiting(FakeSocket):
        async def send_text(self, data: str) -> None:
            assert self.stall is not None
            await self.stall.wait()
            raise ConnectionResetError("the client went away")

    sock = GoneWhileWaiting(stall=True)
    async with Hub(config()).connect(sock) as conn:
        await asyncio.sleep(0)
        assert conn.push({"type": "message", "seq": 1}), "accepted: the write is under way"
        assert sock.stall is not None
        sock.stall.set()
        await asyncio.wait_for(conn.closed.wait(), 2)
    assert conn.close_code == 1006
