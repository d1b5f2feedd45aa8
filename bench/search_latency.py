"""`GET /api/v1/search` latency over HTTP at 10k questions, beside the bare full-text SQL of the same queries.

Run: .venv/bin/python -m bench.search_latency [--size 10000] [--queries 300] [--explain]

Setup (bench/similar_latency.py's): a temporary embedded PostgreSQL, the BANKING77 train texts (read
from the shared folder at run time) with their real MiniLM vectors as questions, half of them answered;
then every fifth question gets a resolved swarm of four messages and every third a comment, each a
random other BANKING77 text, so that answers, comments and transcripts all hold searchable words. The
app runs under uvicorn in a subprocess (rate limits off); one client sends each query in turn.

Two query sets: the BANKING77 test sentences as typed ("How do I locate my card?": every word must
match), and keyword pairs (the first two words of four or more letters of each: "locate card"), which
match far more threads. Baselines, from a client with a warm connection: the bare full-text SQL (one
GIN-indexed statement over questions, ranked, top 20) and site search's own full-text statement (all
four sources, visibility, duplicates, filters). The HTTP figure also embeds each query and fuses the
vector side; the server's Server-Timing says where the time went.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import httpx

from bench.matching import DEFAULT_DATA, read_rows, temporary_database
from bench.similar_latency import cached_vectors, corpus, fill, ms, server_timing, start_server
from embeddings import load_embedder
from supportswarm.db import ConnectionParams, ensure_database, migrate, parse_database_url
from supportswarm.matching import site_search

# The plainest full-text search PostgreSQL offers, over the question text only: the baseline.
BARE_SQL = """
SELECT id FROM questions WHERE search @@ websearch_to_tsquery('english', $1)
ORDER BY ts_rank_cd(search, websearch_to_tsquery('english', $1)) DESC LIMIT 20
"""


async def add_threads(params: ConnectionParams, texts: list[str], seed: int) -> tuple[int, int]:
    """Resolved swarms (four messages each) on every fifth question, a comment on every third."""
    rng = random.Random(seed)
    conn = await asyncpg.connect(params.url())
    try:
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM questions ORDER BY id")]
        rooms = ids[::5]
        swarm_ids = await conn.fetch(
            "INSERT INTO swarms (question_id, status, resolved_at, last_seq) "
            "SELECT q, 'resolved', now(), 4 FROM unnest($1::int[]) AS q RETURNING id", rooms)
        messages = [(s["id"], seq, rng.choice(texts), f"b{s['id']}:{seq}") for s in swarm_ids for seq in range(1, 5)]
        await conn.executemany(
            "INSERT INTO swarm_messages (swarm_id, seq, body, client_msg_id) VALUES ($1, $2, $3, $4)", messages)
        commented = ids[::3]
        await conn.executemany("INSERT INTO comments (question_id, body) VALUES ($1, $2)",
                               [(q, rng.choice(texts)) for q in commented])
        await conn.execute("VACUUM ANALYZE")
        return len(messages), len(commented)
    finally:
        await conn.close()


def keywords(text: str) -> str:
    words = [w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 4]
    return " ".join(words[:2]) or text


async def sql_latency(params: ConnectionParams, queries: list[str]) -> tuple[list[float], list[float], list[int]]:
    """Seconds of the bare full-text statement and of site search's own, per query; and its match counts."""
    conn = await asyncpg.connect(params.url())
    try:
        bare, ours, totals = [], [], []
        for q in queries[:20] + queries:  # the first 20: warm-up
            start = time.perf_counter()
            await conn.fetch(BARE_SQL, q)
            middle = time.perf_counter()
            rows = await conn.fetch(site_search._TEXT_SQL, q, [], [], None, False, [], site_search.MAX_RESULTS)
            bare.append(middle - start)
            ours.append(time.perf_counter() - middle)
            totals.append(rows[0]["total"] if rows else 0)
        return bare[20:], ours[20:], totals[20:]
    finally:
        await conn.close()


async def explain(params: ConnectionParams, q: str) -> None:
    conn = await asyncpg.connect(params.url())
    try:
        plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + site_search._TEXT_SQL,
                                q, [], [], None, False, [], site_search.MAX_RESULTS)
        print(f"\nEXPLAIN ANALYZE of site search's full-text statement for {q!r}:")
        print("\n".join(r[0] for r in plan))
    finally:
        await conn.close()


def http_latency(url: str, queries: list[str]) -> tuple[list[float], dict[str, list[float]]]:
    seconds: list[float] = []
    parts: dict[str, list[float]] = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for q in queries[:20]:  # warm-up: model first call, connection pool, plan cache
            client.get("/api/v1/search", params={"q": q}).raise_for_status()
        for q in queries:
            start = time.perf_counter()
            response = client.get("/api/v1/search", params={"q": q})
            seconds.append(time.perf_counter() - start)
            response.raise_for_status()
            for name, value in server_timing(response.headers["server-timing"]).items():
                parts.setdefault(name, []).append(value)
    return seconds, parts


async def run(args: argparse.Namespace) -> None:
    embedder = load_embedder()
    train = [r.text for r in read_rows(DEFAULT_DATA / "train.csv", "t")]
    sentences = [r.text for r in read_rows(DEFAULT_DATA / "test.csv", "q")][: args.queries]
    query_sets = {"sentences": sentences, "keyword pairs": [keywords(t) for t in sentences]}
    with temporary_database(None) as db_url, tempfile.TemporaryDirectory(prefix="ss-search-") as tmp:
        params = parse_database_url(db_url)
        await ensure_database(params)
        await migrate(params)
        texts, vectors = corpus(args.size, train, cached_vectors(embedder, train), seed=args.size)
        load_s = await fill(params, texts, vectors, embedder.name)
        messages, comments = await add_threads(params, train, seed=args.size)
        print(f"{args.size} questions (half answered), {messages} resolved-room messages, {comments} comments; "
              f"loaded in {load_s:.0f}s; {len(sentences)} sequential queries per set")
        if args.explain:
            await explain(params, query_sets["keyword pairs"][0])
        sql = {name: await sql_latency(params, qs) for name, qs in query_sets.items()}
        proc, url = start_server(params, Path(tmp) / "app")
        try:
            http = {name: http_latency(url, qs) for name, qs in query_sets.items()}
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    for name in query_sets:
        bare, ours, totals = sql[name]
        seconds, parts = http[name]
        print(f"\n{name} (median {statistics.median(totals):.0f} matching threads, max {max(totals)})")
        print(f"  GET /api/v1/search over HTTP        {ms(seconds)}")
        for part in ("embed", "text", "vector", "page"):
            if part in parts:
                print(f"    server: {part:<26}{ms(parts[part])}")
        print(f"  bare full-text SQL (baseline)       {ms(bare)}")
        print(f"  site search full-text SQL alone     {ms(ours)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search_latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--explain", action="store_true", help="print the full-text statement's plan once")
    asyncio.run(run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
