"""An asyncio load client for the swarm room protocol (README "Swarm protocol"), shared by the benchmark
(bench/swarm_ws.py) and the kill test (tests/swarm/test_kill.py).

`RoomClient` is one member's connection to one room, written the way a real client must be for the
room's guarantees to hold end to end:

- it keeps `last_seq` and resumes with it after any close, failing over to the next server URL (a load
  balancer's job) when its server is gone;
- it retries every unacknowledged `say` after a reconnect with the SAME `client_msg_id` (a say in flight
  when the server died is either stored or retried, and stored once either way);
- it checks what it receives: a seq that skips ahead is a gap, a seq it already has is a duplicate
  (except the one echo the server sends back for each retried say), and both are recorded, never hidden;
- it times each resync: from the moment the connection dropped until it holds every message up to the
  head the server announced in `welcome`.

The second half runs many clients in separate processes (`LoadProcess`), so that one Python process's
event loop is not the bottleneck being measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import multiprocessing
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

# time.monotonic is CLOCK_MONOTONIC on Linux: one clock for every process on the machine, so a latency
# can be measured from a send in one load process to a receipt in another.
clock = time.monotonic
FATAL_CLOSES = {4400, 4401, 4403, 4404}  # reconnecting would not help: stop and report


@dataclass
class Say:
    client_msg_id: str
    body: str
    sends: int = 0


@dataclass
class Resync:
    """One reconnect: when the connection dropped, when `welcome` came, when the client had caught up."""

    lost_at: float
    url: str = ""
    welcomed_at: float | None = None
    synced_at: float | None = None
    head: int = 0

    @property
    def seconds(self) -> float | None:
        return None if self.synced_at is None else self.synced_at - self.lost_at


@dataclass
class ClientCounters:
    acked: int = 0
    retried: int = 0  # says sent again after a reconnect
    connects: int = 0
    duplicates: list[int] = field(default_factory=list)
    gaps: list[tuple[int, int]] = field(default_factory=list)
    closes: list[int | None] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


OnMessage = Callable[["RoomClient", dict[str, Any], float], None]


class RoomClient:
    """One member in one room: connect, resume, retry, verify. Start with `start()`, end with `stop()`."""

    def __init__(self, urls: Sequence[str], swarm_id: int, token: str | None, *, home: int = 0, window: int = 8,
                 on_message: OnMessage | None = None, compression: str | None = "deflate",
                 open_timeout: float = 10.0) -> None:
        self.urls = [u.rstrip("/") for u in urls]
        self.swarm_id, self.token, self.window = swarm_id, token, window
        self.at = home % len(self.urls)  # index of the server currently in use
        self.on_message, self.compression, self.open_timeout = on_message, compression, open_timeout
        self.last_seq = 0
        self.transcript: list[tuple[int, str]] = []  # (seq, client_msg_id) in the order received
        self.pending: dict[str, Say] = {}  # sent (or to send), not yet acknowledged; insertion-ordered
        self.n = ClientCounters()
        self.resyncs: list[Resync] = []
        self.synced = asyncio.Event()  # welcomed and caught up to the welcome's head
        self.presence_at = 0.0  # when the last presence frame came
        self.fatal: str | None = None
        self._echoes: Counter[str] = Counter()  # retried says: the server answers each with the stored message
        self._sync_target: int | None = None
        self._ws: ClientConnection | None = None
        self._space = asyncio.Event()
        self._space.set()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._count = 0

    @property
    def connected(self) -> bool:
        """Welcomed on a live connection: says go out at once (else they wait for the next welcome)."""
        return self._ws is not None

    @property
    def url(self) -> str:
        return f"{self.urls[self.at]}/ws/swarms/{self.swarm_id}"

    async def start(self, *, within: float = 30.0) -> None:
        """Connect and wait until welcomed and caught up (TimeoutError otherwise)."""
        self._task = asyncio.create_task(self._run(), name=f"room-client:{self.swarm_id}")
        async with asyncio.timeout(within):
            await self.synced.wait()

    async def stop(self) -> None:
        self._stopping = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])

    async def say(self, body: str) -> str:
        """Send a room message, waiting while `window` says are unacknowledged. Returns its client_msg_id."""
        while len(self.pending) >= self.window:
            self._space.clear()
            await self._space.wait()
        self._count += 1
        cmid = f"{os.getpid():x}-{id(self) & 0xFFFFFF:x}-{self._count}-{random.getrandbits(24):x}"
        say = Say(cmid, body)
        self.pending[cmid] = say
        if self.connected:
            await self._send(say)
        return cmid  # not connected: sent after the next welcome

    async def _send(self, say: Say) -> None:
        ws = self._ws
        if ws is None:
            return
        say.sends += 1
        if say.sends > 1:
            self.n.retried += 1
            self._echoes[say.client_msg_id] += 1
        with contextlib.suppress(ConnectionClosed):  # still pending: retried after the reconnect
            await ws.send(json.dumps({"type": "say", "client_msg_id": say.client_msg_id, "body": say.body}))

    # --- the connection loop ------------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        lost = Resync(lost_at=clock())
        while not self._stopping:
            try:
                ws = await connect(self.url, additional_headers=self._headers(), compression=self.compression,
                                   open_timeout=self.open_timeout, close_timeout=2, ping_interval=None,
                                   proxy=None, max_size=2**24, max_queue=None)
            except (OSError, InvalidHandshake, TimeoutError):
                failures += 1
                self.at = (self.at + 1) % len(self.urls)  # this server is gone or refusing: try the next
                await asyncio.sleep(min(1.0, 0.02 * 2**failures) * random.random())
                continue
            failures = 0
            lost.url = self.url
            code = await self._session(ws, lost)
            self.n.closes.append(code)
            if self._stopping:
                return
            lost = Resync(lost_at=clock())
            if code in FATAL_CLOSES:
                self.fatal = f"closed with {code}"
                return
            if code != 4008:  # 4008 (slow consumer): the server is fine; anything else: fail over
                self.at = (self.at + 1) % len(self.urls)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def _session(self, ws: ClientConnection, resync: Resync) -> int | None:
        self.n.connects += 1
        try:
            await ws.send(json.dumps({"type": "hello", "last_seq": self.last_seq}))
            async for raw in ws:
                self._on_frame(json.loads(raw), resync)
                if self._ws is None and self._sync_target is not None:
                    self._ws = ws  # welcomed: says may go out now, the unacknowledged ones first
                    for say in list(self.pending.values()):
                        await self._send(say)
        except ConnectionClosed:
            pass
        finally:
            self._ws = None
            self._sync_target = None
            self.synced.clear()
            with contextlib.suppress(Exception):  # stopped, or a bug above: never leave the socket open
                await ws.close()
        return ws.close_code  # 1006: the connection dropped without a close frame (e.g. the server died)

    # --- frames -------------------------------------------------------------------------------------------

    def _on_frame(self, frame: dict[str, Any], resync: Resync) -> None:
        kind = frame.get("type")
        if kind == "message":
            self._on_message(frame, clock())
        elif kind == "welcome":
            self._on_welcome(frame, resync)
        elif kind == "presence":
            self.presence_at = clock()
        elif kind == "error":
            self.n.errors.append(frame)
            self._retry_later(frame)
        self._check_synced()

    def _on_welcome(self, frame: dict[str, Any], resync: Resync) -> None:
        now = clock()
        resync.welcomed_at, resync.head = now, frame["head"]
        if frame.get("reset"):  # another database: start over (never expected in our runs; recorded)
            self.n.errors.append({"type": "reset", "head": frame["head"]})
            self.last_seq, self.transcript = 0, []
        self.resyncs.append(resync)
        self._sync_target = frame["head"]
        for message in frame["backlog"]:
            self._on_message(message, now)

    def _on_message(self, frame: dict[str, Any], at: float) -> None:
        seq, cmid = frame["seq"], frame["client_msg_id"]
        if seq <= self.last_seq:
            if self._echoes[cmid] > 0:  # the answer to a retried say that had been stored already
                self._echoes[cmid] -= 1
                self._ack(cmid)
            else:
                self.n.duplicates.append(seq)
            return
        if seq != self.last_seq + 1:
            self.n.gaps.append((self.last_seq, seq))
        self.last_seq = seq
        self.transcript.append((seq, cmid))
        self._ack(cmid)
        if self.on_message is not None:
            self.on_message(self, frame, at)

    def _ack(self, cmid: str) -> None:
        if self.pending.pop(cmid, None) is not None:
            self.n.acked += 1
            if len(self.pending) < self.window:
                self._space.set()

    def _check_synced(self) -> None:
        if self._sync_target is not None and not self.synced.is_set() and self.last_seq >= self._sync_target:
            self.synced.set()
            if self.resyncs and self.resyncs[-1].synced_at is None:
                self.resyncs[-1].synced_at = clock()

    def _retry_later(self, frame: dict[str, Any]) -> None:
        say = self.pending.get(frame.get("client_msg_id") or "")
        if say is not None and frame.get("code") == "rate_limited":
            asyncio.get_running_loop().call_later(float(frame.get("retry_after", 1.0)),
                                                  lambda: asyncio.ensure_future(self._send(say)))


async def start_all(clients: Sequence[RoomClient], *, concurrency: int = 50, within: float = 60.0) -> None:
    """Connect every client, at most `concurrency` handshakes at a time (a connect storm is not the test)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(c: RoomClient) -> None:
        async with gate:
            await c.start(within=within)

    await asyncio.gather(*(one(c) for c in clients))


async def wait_until(predicate: Callable[[], bool], *, within: float, what: str = "condition") -> None:
    """Poll `predicate` until true; TimeoutError naming `what` after `within` seconds."""
    deadline = clock() + within
    while not predicate():
        if clock() > deadline:
            raise TimeoutError(f"{what}: not met within {within}s")
        await asyncio.sleep(0.02)


# --- latency --------------------------------------------------------------------------------------------


def stamped(label: str) -> str:
    """A message body carrying its send time (ns on the shared monotonic clock)."""
    return f"{time.monotonic_ns()} {label}"


@dataclass
class Deliveries:
    """Per room message: when it was sent, when the last member (seen here) got it, by how many members."""

    sent: dict[tuple[int, int], int] = field(default_factory=dict)
    last: dict[tuple[int, int], float] = field(default_factory=dict)
    count: Counter[tuple[int, int]] = field(default_factory=Counter)

    def record(self, client: RoomClient, frame: dict[str, Any], at: float) -> None:
        key = (client.swarm_id, frame["seq"])
        head = frame["body"].split(" ", 1)[0]
        if key not in self.sent and head.isdigit():
            self.sent[key] = int(head)
        self.count[key] += 1
        self.last[key] = max(self.last.get(key, 0.0), at)

    def merge(self, other: Deliveries) -> None:
        self.sent.update(other.sent)
        self.count.update(other.count)
        for key, at in other.last.items():
            self.last[key] = max(self.last.get(key, 0.0), at)

    def latencies(self, members: dict[int, int], since: float, until: float) -> tuple[list[float], int]:
        """Seconds from send until the room's last member had it, for messages sent in [since, until);
        and how many of those some member never got."""
        done, missing = [], 0
        for key, sent_ns in self.sent.items():
            sent = sent_ns / 1e9
            if not since <= sent < until:
                continue
            if self.count[key] < members[key[0]]:
                missing += 1
            else:
                done.append(self.last[key] - sent)
        return sorted(done), missing


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


# --- many clients in another process ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ClientSpec:
    urls: tuple[str, ...]
    swarm_id: int
    token: str | None
    home: int = 0
    sender: bool = False


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What a load process does once every client is connected and the parent says go.

    rate > 0: each sender says `rate` messages per second, open loop (the schedule does not wait for
    acks, so a slow server shows up as latency, not as a lower send rate). rate == 0 and duration > 0:
    flood, each sender keeping `window` says in flight (throughput). duration == 0: idle connections."""

    clients: tuple[ClientSpec, ...]
    rate: float = 0.0
    window: int = 8
    duration_s: float = 0.0
    compression: str | None = None
    concurrency: int = 50
    quiet_s: float = 0.0
    """Before reporting ready: wait until no client has had a presence frame for this long (a room
    assembled, its presence broadcasts over)."""


@dataclass
class ProcessResult:
    deliveries: Deliveries
    acked: dict[int, int]  # swarm -> highest seq acknowledged to this process's senders
    counters: dict[str, int]
    loop_lag: list[float]
    resync_s: list[float]
    errors: list[dict[str, Any]]


class LoadProcess:
    """A child process running `plan`'s clients; the parent steps it through connect, go, drain, result."""

    def __init__(self, plan: Plan) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_child_main, args=(child, plan), daemon=True)
        self.process.start()
        child.close()

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def expect(self, kind: str, timeout: float) -> Any:
        if not self._conn.poll(timeout):
            raise TimeoutError(f"load process {self.pid}: no {kind!r} within {timeout}s")
        got, payload = self._conn.recv()
        if got == "failed":
            raise RuntimeError(f"load process {self.pid} failed: {payload}")
        assert got == kind, (got, kind)
        return payload

    def send(self, kind: str, payload: Any = None) -> None:
        self._conn.send((kind, payload))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.send("stop")
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()


def _child_main(conn: Connection, plan: Plan) -> None:
    try:
        asyncio.run(_child(conn, plan))
    except Exception as exc:  # report, so the parent fails with the reason instead of a timeout
        conn.send(("failed", repr(exc)))


async def _recv(conn: Connection) -> tuple[str, Any]:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(conn.fileno(), readable)
    try:
        await ready
    finally:
        loop.remove_reader(conn.fileno())
    kind, payload = conn.recv()
    return str(kind), payload


async def _child(conn: Connection, plan: Plan) -> None:
    book = Deliveries()
    clients = [RoomClient(s.urls, s.swarm_id, s.token, home=s.home, window=plan.window if plan.rate == 0 else 10**6,
                          on_message=book.record, compression=plan.compression, open_timeout=60)
               for s in plan.clients]
    started = clock()
    await start_all(clients, concurrency=plan.concurrency, within=600)
    await wait_until(lambda: clock() - max(c.presence_at for c in clients) >= plan.quiet_s, within=120,
                     what="presence quiet")
    gc.collect()
    gc.freeze()  # the connected clients are long-lived: keep the collector from rescanning them mid-run
    conn.send(("ready", {"connect_s": clock() - started}))
    kind, _ = await _recv(conn)
    if kind == "go":
        senders = [c for c, s in zip(clients, plan.clients, strict=True) if s.sender]
        lag: list[float] = []
        probe = asyncio.create_task(_loop_lag(lag))
        await _drive(senders, plan)
        await wait_until(lambda: all(not c.pending for c in senders), within=60, what="every say acknowledged")
        conn.send(("sent", _acked_heads(senders)))
        _, heads = await _recv(conn)
        await wait_until(lambda: all(c.last_seq >= heads.get(c.swarm_id, 0) for c in clients), within=60,
                         what="every member has every message")
        probe.cancel()
        conn.send(("result", _result(clients, book, lag)))
        kind, _ = await _recv(conn)
    await asyncio.gather(*(c.stop() for c in clients))


async def _drive(senders: list[RoomClient], plan: Plan) -> None:
    end = clock() + plan.duration_s

    async def steady(c: RoomClient) -> None:
        at = clock() + random.random() / plan.rate  # spread the senders' phases
        i = 0
        while at < end:
            await asyncio.sleep(max(0.0, at - clock()))
            i += 1
            await c.say(stamped(f"m{i}"))
            at += 1 / plan.rate

    async def flood(c: RoomClient) -> None:
        i = 0
        while clock() < end:
            i += 1
            await c.say(stamped(f"f{i}"))

    await asyncio.gather(*((steady if plan.rate > 0 else flood)(c) for c in senders))


async def _loop_lag(samples: list[float], every: float = 0.05) -> None:
    """How late this event loop wakes up: the load client's own overhead, reported beside the latencies."""
    while True:
        before = clock()
        await asyncio.sleep(every)
        samples.append(clock() - before - every)


def _acked_heads(senders: list[RoomClient]) -> dict[int, int]:
    heads: dict[int, int] = {}
    for c in senders:
        heads[c.swarm_id] = max(heads.get(c.swarm_id, 0), c.last_seq)
    return heads


def _result(clients: list[RoomClient], book: Deliveries, lag: list[float]) -> ProcessResult:
    counters: Counter[str] = Counter()
    errors: list[dict[str, Any]] = []
    for c in clients:
        counters.update(acked=c.n.acked, retried=c.n.retried, reconnects=c.n.connects - 1,
                        duplicates=len(c.n.duplicates), gaps=len(c.n.gaps))
        errors += c.n.errors[:3]
    resync = [s for c in clients for r in c.resyncs[1:] if (s := r.seconds) is not None]
    return ProcessResult(book, _acked_heads(clients), dict(counters), lag, resync, errors[:20])
