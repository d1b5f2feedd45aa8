"""Bulk embedding scales with arq workers: the same re-embedding of N questions by one worker, then by two.

A throwaway PostgreSQL (embedded, or a new database on --database-url's server) gets N questions without
vectors (texts from BANKING77 when /work/shared/data or --texts has it, else synthetic sentences). For each
configuration, the vectors are cleared, the workers are started and waited for until their model is
loaded (so start-up is not timed), then `reindex` — exactly what `supportswarm reindex` does with
REDIS_URL — hands EMBED_QUESTIONS batches to Redis, and the clock runs until no question lacks its
vector. Beside it, in the same run: the raw encode rate of the same texts in this process (one thread),
the rate any worker is bounded by.

Each worker gets one torch thread (SUPPORTSWARM_EMBED_THREADS=1), one worker per core being how they are
deployed; a row with one worker on two threads shows what intra-op threading alone gives.

Run: .venv/bin/python bench/worker_scaling.py [--questions 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _cluster import Cluster, Proc, create_database, wait_ok  # noqa: E402

BANKING77 = Path("/work/shared/data/banking77/train.csv")
WORDS = ("card payment declined transfer pending account app login passcode refund fee exchange rate top-up "
         "balance statement verification identity address limit contactless pin cash withdrawal atm").split()


def texts(n: int, source: Path | None) -> list[tuple[str, str]]:
    """(title, body) pairs: customer questions of realistic length."""
    rng = random.Random(7)
    if source is not None and source.exists():
        with source.open(newline="", encoding="utf-8") as f:
            lines = [row["text"] for row in csv.DictReader(f)]
        return [(rng.choice(lines)[:200], " ".join(rng.choice(lines) for _ in range(3))) for _ in range(n)]

    def sentence(k: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(k)).capitalize() + "."

    return [(sentence(8), " ".join(sentence(12) for _ in range(3))) for _ in range(n)]


async def fill(url: str, rows: list[tuple[str, str]]) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.copy_records_to_table("questions", records=rows, columns=["title", "body"])
    finally:
        await conn.close()


async def stale(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM questions WHERE embedding IS NULL"))
    finally:
        await conn.close()


async def clear(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("UPDATE questions SET embedding = NULL, embedding_model = NULL")
    finally:
        await conn.close()


async def model_loaded(proc: Proc) -> bool:
    async with httpx.AsyncClient(timeout=2) as client:
        text = (await client.get(f"{proc.url}/metrics")).text
    return any(s.value == 1 for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "supportswarm_embedding_model_loaded")


async def _all_embedded(url: str) -> bool:
    return await stale(url) == 0


async def enqueue_all(cluster: Cluster, batch: int) -> None:
    """`supportswarm reindex` with REDIS_URL, minus its progress bar: EMBED_QUESTIONS batches into Redis."""
    from embeddings import load_embedder
    from supportswarm.matching import services as matching
    from supportswarm.resources import open_resources
    from supportswarm.settings import Settings

    async with open_resources(Settings.from_env(cluster.env()), embedder=load_embedder(),
                              run_migrations=False) as res:
        await matching.reindex(embedder=res.embedder, jobs=res.jobs, inline=False, batch_size=batch)


async def until(predicate: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 1800.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        await asyncio.sleep(0.1)


async def timed_run(cluster: Cluster, workers: int, threads: int, batch: int) -> float:
    await clear(cluster.database_url)
    procs = [cluster.worker(f"worker-{workers}x{threads}-{i}", SUPPORTSWARM_EMBED_THREADS=str(threads))
             for i in range(workers)]
    try:
        for proc in procs:
            await wait_ok(proc, "/metrics")
            await until(lambda: model_loaded(proc), f"{proc.name} to load the model")  # noqa: B023 - awaited here
        start = time.perf_counter()
        await enqueue_all(cluster, batch)
        await until(lambda: _all_embedded(cluster.database_url), "every question to be embedded")
        return time.perf_counter() - start
    finally:
        for proc in procs:
            cluster.stop(proc)


def raw_rate(rows: list[tuple[str, str]]) -> float:
    """Texts/s of the model itself, one thread, in this process: the bound of one worker."""
    import torch

    from embeddings import load_embedder
    from supportswarm.matching.search import question_text

    torch.set_num_threads(1)
    model = load_embedder()
    sample = [question_text(t, b) for t, b in rows[: min(len(rows), 512)]]
    model.encode(sample[:64])
    start = time.perf_counter()
    model.encode(sample)
    return len(sample) / (time.perf_counter() - start)


async def main(args: argparse.Namespace) -> None:
    rows = texts(args.questions, args.texts)
    with tempfile.TemporaryDirectory(prefix="ss-worker-bench-") as tmp, \
            Cluster(Path(tmp), args.database_url, args.redis_url) as cluster:
        await create_database(cluster.database_url)
        cluster.run("migrate")
        await fill(cluster.database_url, rows)
        baseline = raw_rate(rows)
        results = []
        for workers, threads in ((1, 1), (2, 1), (1, 2)):
            seconds = await timed_run(cluster, workers, threads, args.batch)
            results.append((workers, threads, seconds))
            print(f"  {workers} worker(s) x {threads} thread(s): {seconds:.1f} s", file=sys.stderr)
    print(f"\nBulk embedding through arq: {len(rows)} questions, EMBED_QUESTIONS batches of {args.batch}, "
          f"{os.cpu_count()} CPUs\n")
    print(f"raw encode rate in one process, 1 thread (same run): {baseline:.0f} texts/s\n")
    print(f"{'workers':>7} {'threads each':>12} {'seconds':>8} {'questions/s':>12} {'speed-up':>9}")
    one = results[0][2]
    for workers, threads, seconds in results:
        print(f"{workers:>7} {threads:>12} {seconds:>8.1f} {len(rows) / seconds:>12.0f} {one / seconds:>8.2f}x")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=128, help="questions per EMBED_QUESTIONS job (reindex: 256)")
    parser.add_argument("--texts", type=Path, default=BANKING77, help="a CSV with a `text` column")
    parser.add_argument("--database-url", help="a PostgreSQL server to use (a new supportswarm_bench database)")
    parser.add_argument("--redis-url", help="a Redis to use instead of a throwaway redis-server")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
