"""Times GET /api/v1/metrics/summary over a database holding about 1M events.

Fills a fresh database (embedded in a temporary folder, or DATABASE_URL) with realistic shapes
made by generate_series in SQL: ~3,000 users, ~125k questions over 90 days with tags, answers,
first responses after exponentially distributed delays, resolutions, deflections, reuse, and
swarms (10% of questions) with joins and messages. Then runs the rollup job once (timed), and
times the summary API call through the real app (auth, SQL, JSON) for several filter sets: p50
and p99 of `--runs` calls each, after warm-up. A baseline measured in the same run is printed
beside it: a bare `SELECT count(*) FROM events`. Finally it times the summary again with a
tail of unfolded events (what reads pay between two rollups).

Run: .venv/bin/python bench/metrics_summary.py [--questions 125000] [--runs 40]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from tortoise import connections

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from supportswarm.accounts import services as accounts  # noqa: E402
from supportswarm.app import create_app  # noqa: E402
from supportswarm.metrics import rollup  # noqa: E402
from supportswarm.settings import Settings  # noqa: E402
from workers.registry import JOB_FUNCTIONS  # noqa: E402

SEED_SQL = """
SELECT setseed(0.42);
INSERT INTO users (username, password_hash, role)
SELECT 'user' || g, 'x', CASE WHEN g <= 80 THEN 'staff' WHEN g <= 380 THEN 'expert' WHEN g <= 385 THEN 'lead'
                              ELSE 'customer' END
FROM generate_series(1, 3000) g;
INSERT INTO tags (name) SELECT 'tag' || g FROM generate_series(1, 24) g;

-- One row per question with its fate drawn once: who, when, how fast, how it ended.
CREATE TEMP TABLE plan AS
SELECT g AS n, 386 + floor(random() * 2614)::int AS asker,
       now() - random() * interval '90 days' AS asked_at,
       1 + floor(random() * 380)::int AS helper,
       random() < 0.9 AS responded, -ln(1 - random()) * 1800 AS ttfr_s,
       random() < 0.65 AS resolved, -ln(1 - random()) * 14400 AS ttr_s,
       random() < 0.1 AS swarmed, random() < 0.03 AS duplicate
FROM generate_series(1, {questions}) g;

INSERT INTO questions (id, author_id, title, body, status, created_at, updated_at, last_activity_at)
SELECT n, asker, 'Question ' || n, 'body', CASE WHEN resolved THEN 'resolved' ELSE 'open' END,
       asked_at, asked_at, asked_at FROM plan;
SELECT setval('questions_id_seq', {questions});
INSERT INTO question_tags (question_id, tag_id) SELECT n, 1 + n % 24 FROM plan;
INSERT INTO question_tags (question_id, tag_id) SELECT n, 1 + (n * 7) % 23 FROM plan WHERE n % 3 = 0
ON CONFLICT DO NOTHING;
INSERT INTO answers (id, question_id, author_id, body, created_at, updated_at)
SELECT n, n, helper, 'answer', asked_at + ttfr_s * interval '1 second', asked_at FROM plan WHERE responded;
SELECT setval('answers_id_seq', {questions});
INSERT INTO swarms (id, question_id, status, reason, opened_at)
SELECT n, n, CASE WHEN resolved THEN 'resolved' ELSE 'open' END, 'no_match', asked_at + interval '2 minutes'
FROM plan WHERE swarmed;
SELECT setval('swarms_id_seq', {questions});

INSERT INTO events (kind, at, actor_id, question_id, answer_id, swarm_id, data)
SELECT 'question_asked', asked_at, asker, n, NULL::int, NULL::int, '{{}}'::jsonb FROM plan
UNION ALL
SELECT 'suggestion_shown', asked_at - interval '20 seconds', asker, NULL, NULL, NULL, '{{}}' FROM plan
UNION ALL
SELECT 'first_response', asked_at + ttfr_s * interval '1 second', helper, n, NULL, NULL,
       jsonb_build_object('role', CASE WHEN helper <= 80 THEN 'staff' ELSE 'expert' END) FROM plan WHERE responded
UNION ALL
SELECT 'answer_posted', asked_at + ttfr_s * interval '1 second', helper, n, n, NULL, '{{}}' FROM plan WHERE responded
UNION ALL
SELECT 'comment_posted', asked_at + (ttfr_s + 60 * k) * interval '1 second', 1 + (n * k) % 3000, n, NULL, NULL, '{{}}'
FROM plan, generate_series(1, 2) k WHERE responded
UNION ALL
SELECT 'answer_accepted', asked_at + (ttfr_s + ttr_s) * interval '1 second', asker, n, n, NULL, '{{}}'
FROM plan WHERE resolved AND responded
UNION ALL
SELECT 'question_resolved', asked_at + (ttfr_s + ttr_s) * interval '1 second', asker, n, NULL, NULL, '{{}}'
FROM plan WHERE resolved
UNION ALL
SELECT 'duplicate_linked', asked_at + interval '1 hour', 1, n, NULL, NULL, '{{}}' FROM plan WHERE duplicate
UNION ALL
SELECT 'suggestion_accepted', asked_at + interval '1 day', asker, NULL, p.n - 1, NULL,
       jsonb_build_object('suggested_question_id', p.n - 1, 'answer_id', p.n - 1)
FROM plan p WHERE p.n % 6 = 0 AND p.n > 1 AND EXISTS (SELECT 1 FROM answers a WHERE a.id = p.n - 1)
UNION ALL
SELECT 'answer_reused', asked_at + interval '1 day', NULL, NULL, p.n - 1, NULL, '{{}}'
FROM plan p WHERE p.n % 6 = 0 AND p.n > 1 AND EXISTS (SELECT 1 FROM answers a WHERE a.id = p.n - 1)
UNION ALL
SELECT 'swarm_opened', asked_at + interval '2 minutes', NULL, n, NULL, n, '{{"reason": "no_match"}}'
FROM plan WHERE swarmed
UNION ALL
SELECT 'swarm_joined', asked_at + (120 + 90 * k) * interval '1 second', 1 + (n * k) % 380, n, NULL, n, '{{}}'
FROM plan, generate_series(1, 3) k WHERE swarmed
UNION ALL
SELECT 'swarm_message', asked_at + (300 + 30 * k) * interval '1 second', 1 + (n * k) % 380, n, NULL, n, '{{}}'
FROM plan, generate_series(1, 5) k WHERE swarmed
UNION ALL
SELECT 'swarm_resolved', asked_at + (ttfr_s + ttr_s) * interval '1 second', helper, n, NULL, n, '{{}}'
FROM plan WHERE swarmed AND resolved;
ANALYZE;
"""

WINDOWS = {
    "default (last 30 days)": "",
    "all time (90 days of data)": "?since=2000-01-01",
    "30 days, tag": "?tag=tag3",
    "30 days, responder=staff": "?responder=staff",
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed(fn: Callable[[], Awaitable[object]], runs: int) -> tuple[float, float]:
    for _ in range(3):
        await fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), percentile(samples, 0.99)


async def seed(questions: int) -> tuple[int, float]:
    started = time.perf_counter()
    await connections.get("default").execute_script(SEED_SQL.format(questions=questions))
    rows = await rollup.fetch("SELECT count(*)::int AS n FROM events")
    return int(rows[0]["n"]), time.perf_counter() - started


async def run(settings: Settings, args: argparse.Namespace) -> None:
    app = create_app(settings, job_functions=JOB_FUNCTIONS)
    async with LifespanManager(app, startup_timeout=180, shutdown_timeout=60) as manager:
        events, seconds = await seed(args.questions)
        print(f"seeded {events:,} events for {args.questions:,} questions in {seconds:.1f}s")
        started = time.perf_counter()
        result = await rollup.rollup()
        print(f"rollup folded {result.questions:,} questions and {result.swarms:,} swarms "
              f"in {time.perf_counter() - started:.1f}s")
        # What autovacuum does soon after any bulk write: statistics and the visibility map for the new rows.
        await connections.get("default").execute_script(
            "VACUUM ANALYZE metric_question_facts, metric_swarm_facts, metric_contributions")
        lead = await accounts.register("bench-lead", "bench-password", role="lead")
        headers = {"Authorization": f"Bearer {await accounts.create_token(lead)}"}
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            await report(client, headers, args.runs)
            await add_tail(args.tail)
            p50, p99 = await summary_timing(client, headers, "", args.runs)
            print(f"\nwith {args.tail:,} unfolded events in the tail: summary p50 {p50:.1f} ms, p99 {p99:.1f} ms")


async def summary_timing(client: httpx.AsyncClient, headers: dict[str, str], query: str,
                         runs: int) -> tuple[float, float]:
    async def call() -> None:
        response = await client.get(f"/api/v1/metrics/summary{query}", headers=headers)
        assert response.status_code == 200, response.text

    return await timed(call, runs)


async def report(client: httpx.AsyncClient, headers: dict[str, str], runs: int) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nmachine: {os.cpu_count()} cores, load average {load} (other processes slow every figure alike)")
    p50, p99 = await timed(lambda: rollup.fetch("SELECT count(*) FROM events"), runs)
    print(f"baseline: SELECT count(*) FROM events    p50 {p50:7.1f} ms   p99 {p99:7.1f} ms")
    for name, query in WINDOWS.items():
        p50, p99 = await summary_timing(client, headers, query, runs)
        print(f"summary, {name:27} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms")
    response = await client.get("/api/v1/metrics/summary", headers=headers)
    data = response.json()
    ttfr = data["time_to_first_response"]["median_s"]
    print(f"\n(default window: {data['questions']:,} questions, ttfr median {ttfr} s, "
          f"resolution rate {data['resolution_rate']}, deflection rate {data['deflection_rate']})")


async def add_tail(events: int) -> None:
    """Events written after the rollup: answers and resolutions on recent questions."""
    await connections.get("default").execute_script(f"""
        INSERT INTO events (kind, at, actor_id, question_id, answer_id)
        SELECT 'comment_posted', now(), 1, q.id, NULL
        FROM (SELECT id FROM questions ORDER BY created_at DESC LIMIT {int(events)}) q""")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--questions", type=int, default=125_000)
    p.add_argument("--runs", type=int, default=40)
    p.add_argument("--tail", type=int, default=2_000, help="unfolded events for the last measurement")
    p.add_argument("--database-url", default=None, help="an EMPTY database to fill (default: embedded, temporary)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="supportswarm-bench-") as tmp:
        settings = Settings(database_url=args.database_url, secret_key="bench", data_dir=Path(tmp), rate_limits=False)
        asyncio.run(run(settings, args))


if __name__ == "__main__":
    main()
