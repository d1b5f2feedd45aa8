"""HTTP throughput and tail latency of the question page and `GET /api/v1/questions/{id}`, 1 vs 2 replicas.

Beside them, in the same run, a bare Starlette + asyncpg endpoint reading the same question row, served by
uvicorn the same way: the ceiling for one Python process on this machine. Every server is a real process
(`supportswarm serve` with DATABASE_URL and REDIS_URL, i.e. the many-node mode) on a loopback port,
against a throwaway PostgreSQL (embedded, or a new database on --database-url's server) and Redis.

The load: `--clients` (64) concurrent keep-alive connections, each sending its next request when the last
answer arrived (closed loop), spread round-robin over the replicas (a client-side load balancer); warm-up
first, then `--duration` seconds measured. requests/s counts answers in the window; p50/p99 are per
request. The client is a small asyncio HTTP/1.1 reader, far lighter than httpx, but it shares the CPUs
with the servers: on a 2-core machine the figures are a floor, and a second replica can only help as far
as there are cores for it.

Run: .venv/bin/python bench/http_bench.py [--clients 64] [--duration 8] [--warmup 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _cluster import Cluster, Proc, create_database, free_port, wait_ok  # noqa: E402

BARE_PATH = "/bare/questions/{id}"


# --- the ceiling: a bare endpoint ----------------------------------------------------------------------


def bare_app(database_url: str) -> object:
    """Starlette + an asyncpg pool, one query, JSON: what any endpoint reading this row costs at least."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    pool: asyncpg.Pool | None = None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal pool
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=10)
        yield
        await pool.close()

    async def question(request: Request) -> JSONResponse:
        assert pool is not None
        row = await pool.fetchrow(
            "SELECT id, title, body, status, score, answer_count, created_at FROM questions WHERE id = $1",
            request.path_params["id"])
        if row is None:
            return JSONResponse({"error": {"code": "not_found"}}, status_code=404)
        return JSONResponse({**dict(row), "created_at": row["created_at"].isoformat()})

    return Starlette(routes=[Route("/bare/questions/{id:int}", question)], lifespan=lifespan)


def run_bare(port: int, database_url: str) -> None:
    import uvicorn

    uvicorn.run(bare_app(database_url), host="127.0.0.1", port=port, log_level="info", proxy_headers=True)  # type: ignore[arg-type]


# --- data ------------------------------------------------------------------------------------------------


async def seed(cluster: Cluster) -> int:
    """One answered question with three answers (Markdown, votes, one accepted): a typical thread."""
    from embeddings import HashingEmbedder
    from supportswarm.accounts import services as accounts
    from supportswarm.forum import services as forum
    from supportswarm.resources import open_resources
    from supportswarm.settings import Settings

    settings = Settings.from_env(cluster.env())
    async with open_resources(settings, embedder=HashingEmbedder()):
        asker = await accounts.register("maria", "bench password 1")
        helpers = [await accounts.register(f"helper{i}", "bench password 1", role="staff") for i in range(3)]
        q = await forum.create_question(
            asker, "My card payment was declined at the supermarket",
            "I tried twice today. My balance is fine and the card is not frozen. **What is going on?**",
            ["cards", "payments"], jobs=None)
        answers = []
        for i, helper in enumerate(helpers):
            body = (f"Answer {i}: most declines come from the *contactless limit*. Insert the card and pay once "
                    "with chip and PIN; the counter resets.\n\n- check the app\n- then retry\n")
            answers.append(await forum.post_answer(helper, q.id, body))
        for voter in helpers[1:]:
            await forum.vote(voter, value=1, answer_id=answers[0].id)
        await forum.accept_answer(asker, answers[0].id)
        return int(q.id)


# --- the load ----------------------------------------------------------------------------------------------


@dataclass
class Result:
    label: str
    processes: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


async def _read_response(reader: asyncio.StreamReader) -> int:
    status = int((await reader.readline()).split()[1])
    length, chunked = 0, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        await reader.readexactly(length)
        return status
    while size := int((await reader.readline()).strip(), 16):
        await reader.readexactly(size + 2)
    await reader.readline()
    return status


async def load(label: str, ports: list[int], path: str, *, clients: int, duration: float, warmup: float) -> Result:
    start = time.perf_counter()
    measure_from, stop = start + warmup, start + warmup + duration
    latencies: list[float] = []
    errors = 0

    async def client(i: int) -> None:
        nonlocal errors
        port = ports[i % len(ports)]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\n\r\n".encode()
        try:
            while (t0 := time.perf_counter()) < stop:
                writer.write(request)
                status = await _read_response(reader)
                if t0 >= measure_from:
                    latencies.append(time.perf_counter() - t0)
                    errors += status != 200
        finally:
            writer.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    cuts = statistics.quantiles(latencies, n=100)
    return Result(label, len(ports), len(latencies), duration, cuts[49] * 1000, cuts[98] * 1000, errors)


# --- the run -----------------------------------------------------------------------------------------------


def _spawn_bare(cluster: Cluster, name: str) -> Proc:
    port = free_port()
    argv = [sys.executable, str(Path(__file__).resolve()), "--bare-port", str(port)]
    return cluster.spawn(name, argv, port)


async def _scenarios(cluster: Cluster, qid: int, args: argparse.Namespace) -> list[Result]:
    opts = {"clients": args.clients, "duration": args.duration, "warmup": args.warmup}
    bare, apps = [_spawn_bare(cluster, "bare-1")], [cluster.serve("serve-1")]
    results = []
    for n in (1, 2):
        if n == 2:
            bare.append(_spawn_bare(cluster, "bare-2"))
            apps.append(cluster.serve("serve-2"))
        await asyncio.gather(*(wait_ok(p, f"/bare/questions/{qid}") for p in bare),
                             *(wait_ok(p, "/readyz") for p in apps))
        for label, procs, path in (
            ("bare Starlette + asyncpg (ceiling)", bare, BARE_PATH.format(id=qid)),
            ("GET /api/v1/questions/{id}", apps, f"/api/v1/questions/{qid}"),
            ("GET /questions/{id} (page)", apps, f"/questions/{qid}"),
        ):
            result = await load(label, [p.port for p in procs], path, **opts)
            print(f"  measured {label} x{n}: {result.rps:.0f} req/s", file=sys.stderr)
            results.append(result)
    return results


def report(results: list[Result], args: argparse.Namespace) -> None:
    print(f"\nHTTP benchmark: {args.clients} concurrent clients, {args.duration:.0f} s measured after "
          f"{args.warmup:.0f} s warm-up per row, loopback, {os.cpu_count()} CPUs shared with the client\n")
    print(f"{'endpoint':<38} {'procs':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'of ceiling':>10}")
    ceiling = {r.processes: r.rps for r in results if r.label.startswith("bare")}
    for r in results:
        share = f"{r.rps / ceiling[r.processes]:.0%}" if not r.label.startswith("bare") else ""
        print(f"{r.label:<38} {r.processes:>5} {r.rps:>8.0f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.errors:>7} "
              f"{share:>10}")
    one = {r.label: r.rps for r in results if r.processes == 1}
    speedups = [f"{r.label}: x{r.rps / one[r.label]:.2f}" for r in results if r.processes == 2]
    print("\nspeed-up from 1 to 2 processes: " + "; ".join(speedups))


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="ss-http-bench-") as tmp, \
            Cluster(Path(tmp), args.database_url, args.redis_url) as cluster:
        await create_database(cluster.database_url)
        cluster.run("migrate")
        qid = await seed(cluster)
        os.environ["SUPPORTSWARM_BENCH_DATABASE_URL"] = cluster.database_url  # for the bare server processes
        report(await _scenarios(cluster, qid, args), args)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per row")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring")
    parser.add_argument("--database-url", help="a PostgreSQL server to use (a new supportswarm_bench database)")
    parser.add_argument("--redis-url", help="a Redis to use instead of a throwaway redis-server")
    parser.add_argument("--bare-port", type=int, help=argparse.SUPPRESS)  # internal: run the bare server
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.bare_port:
        run_bare(arguments.bare_port, os.environ["SUPPORTSWARM_BENCH_DATABASE_URL"])
    else:
        asyncio.run(main(arguments))
