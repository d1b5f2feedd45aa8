"""Per-question and per-swarm facts derived from the event log, and the job that keeps them.

The facts tables hold, for every asked question, the times the dashboard measures from (first
response by each responder type, resolution, duplicate closure) and, for every swarm, its open,
first-join and resolution times and size. The METRICS_ROLLUP job folds new events into them.

Reads never wait for the job: `FACTS_CTE` recomputes, from the events themselves, the facts of
every question and swarm that has events newer than the rollup's watermark, and uses those rows
instead of the stored ones. The answer is therefore exact at every moment; the job only keeps
that "tail" short so reads stay fast.

Why a transaction-id watermark, not an event-id one: ids are handed out at insert but become
visible at commit, so event 100 can commit after event 101 was folded. The job folds events whose
writing transaction is older than its snapshot's xmin; every transaction below xmin has ended, so
nothing older can still appear.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tortoise import connections
from tortoise.transactions import in_transaction

# Advisory lock key: one rollup at a time across every process that shares the database.
_ROLLUP_LOCK = 5_502_771
STATE = "facts"
# A read that finds more unfolded events than this asks for a rollup (see services.maintain).
TAIL_LIMIT = 1_000

STAFF_ROLES_SQL = "('staff', 'lead', 'admin')"
RESPONSE_KINDS_SQL = "('first_response', 'answer_posted', 'comment_posted', 'swarm_message')"
RESOLVED_KINDS_SQL = "('question_resolved', 'answer_accepted', 'swarm_resolved')"

QUESTION_COLUMNS = (
    "question_id, asked_at, asker_id, first_response_at, first_response_type, first_staff_at, "
    "first_expert_at, first_community_at, resolved_at, duplicate_at, swarm_opened_at, events"
)
SWARM_COLUMNS = "swarm_id, question_id, reason, opened_at, first_join_at, size, resolved_at"

# The facts of the questions whose ids `{ids}` (a subquery) yields, from their events alone.
# A response is an answer, comment or swarm message (or the logged first response) by someone
# other than the asker, at or after the ask. Its responder type comes from the role recorded on
# the event when there is one (FIRST_RESPONSE records it), else the responder's current role.
QUESTION_FACTS_SQL = f"""
SELECT a.question_id, a.asked_at, a.asker_id,
       min(r.at) AS first_response_at,
       (array_agg(r.rtype ORDER BY r.at, r.id) FILTER (WHERE r.id IS NOT NULL))[1] AS first_response_type,
       min(r.at) FILTER (WHERE r.rtype = 'staff') AS first_staff_at,
       min(r.at) FILTER (WHERE r.rtype = 'expert') AS first_expert_at,
       min(r.at) FILTER (WHERE r.rtype = 'community') AS first_community_at,
       min(o.resolved_at) AS resolved_at, min(o.duplicate_at) AS duplicate_at,
       min(o.swarm_opened_at) AS swarm_opened_at, min(o.events) AS events
FROM (
    SELECT DISTINCT ON (e.question_id) e.question_id, e.at AS asked_at, e.actor_id AS asker_id
    FROM events e WHERE e.kind = 'question_asked' AND e.question_id IN ({{ids}})
    ORDER BY e.question_id, e.at, e.id
) a
JOIN (
    SELECT e.question_id,
           min(e.at) FILTER (WHERE e.kind IN {RESOLVED_KINDS_SQL}) AS resolved_at,
           min(e.at) FILTER (WHERE e.kind = 'duplicate_linked') AS duplicate_at,
           min(e.at) FILTER (WHERE e.kind = 'swarm_opened') AS swarm_opened_at,
           count(*)::int AS events
    FROM events e WHERE e.question_id IN ({{ids}}) GROUP BY e.question_id
) o ON o.question_id = a.question_id
LEFT JOIN LATERAL (
    SELECT e.id, e.at,
           CASE WHEN coalesce(e.data->>'role', u.role) IN {STAFF_ROLES_SQL} THEN 'staff'
                WHEN coalesce(e.data->>'role', u.role) = 'expert' THEN 'expert'
                ELSE 'community' END AS rtype
    FROM events e LEFT JOIN users u ON u.id = e.actor_id
    WHERE e.question_id = a.question_id AND e.kind IN {RESPONSE_KINDS_SQL}
      AND e.actor_id IS NOT NULL AND e.actor_id IS DISTINCT FROM a.asker_id AND e.at >= a.asked_at
) r ON true
GROUP BY a.question_id, a.asked_at, a.asker_id
"""

# The facts of the swarms whose ids `{ids}` yields. Time-to-join counts the first join by anyone
# but the asker; size counts distinct people who ever joined. A swarm opened before event logging
# (no SWARM_OPENED event) takes its open time from the swarms table.
SWARM_FACTS_SQL = """
SELECT s.id AS swarm_id, s.question_id, s.reason,
       coalesce(min(e.at) FILTER (WHERE e.kind = 'swarm_opened'), s.opened_at) AS opened_at,
       min(e.at) FILTER (WHERE e.kind = 'swarm_joined' AND e.actor_id IS DISTINCT FROM q.author_id) AS first_join_at,
       (count(DISTINCT e.actor_id) FILTER (WHERE e.kind = 'swarm_joined'))::int AS size,
       min(e.at) FILTER (WHERE e.kind = 'swarm_resolved') AS resolved_at
FROM swarms s JOIN questions q ON q.id = s.question_id
LEFT JOIN events e ON e.swarm_id = s.id
WHERE s.id IN ({ids})
GROUP BY s.id, q.author_id
"""

WATERMARK_SQL = f"coalesce((SELECT watermark FROM metric_rollup_state WHERE name = '{STATE}'), '0'::xid8)"

# Credits for top contributors, one row per (event, person), from the events `e` that `{where}` selects
# (a condition on e.txid): the author of an accepted answer (not on their own question), the author of a
# reused answer, and everyone but the asker who joined a swarm when it is resolved. First responses are
# kept too: shown, not ranked.
_ANSWER_OF = ("coalesce(e.answer_id, CASE WHEN e.data->>'answer_id' ~ '^[0-9]{{1,9}}$' "
              "THEN (e.data->>'answer_id')::int END)")
CONTRIBUTIONS_SQL = f"""
SELECT e.id AS event_id, a.author_id AS user_id, e.at, a.question_id,
       CASE e.kind WHEN 'answer_accepted' THEN 'solution' ELSE 'reuse' END AS what
FROM events e JOIN answers a ON a.id = {_ANSWER_OF} JOIN questions q ON q.id = a.question_id
WHERE ({{where}}) AND e.kind IN ('answer_accepted', 'answer_reused') AND a.author_id IS NOT NULL
  AND (e.kind = 'answer_reused' OR a.author_id IS DISTINCT FROM q.author_id)
UNION ALL
SELECT DISTINCT ON (e.id, j.actor_id) e.id, j.actor_id, e.at, s.question_id, 'swarm'
FROM events e JOIN swarms s ON s.id = e.swarm_id JOIN questions q ON q.id = s.question_id
JOIN events j ON j.swarm_id = s.id AND j.kind = 'swarm_joined'
WHERE ({{where}}) AND e.kind = 'swarm_resolved' AND j.actor_id IS NOT NULL AND j.actor_id IS DISTINCT FROM q.author_id
UNION ALL
SELECT e.id, e.actor_id, e.at, e.question_id, 'first_response'
FROM events e WHERE ({{where}}) AND e.kind = 'first_response' AND e.actor_id IS NOT NULL
"""
CONTRIBUTION_COLUMNS = "event_id, user_id, at, question_id, what"


def facts_cte(watermark: str) -> str:
    """Prefix for every read: `facts`, `sfacts` and `credits` are exact per-question, per-swarm and
    contribution rows: the stored ones, with those touched by events at or above `watermark` recomputed.

    The watermark is written into the text (it is an integer from the database, checked below) so the
    planner sees how small the tail is; as a parameter it would guess a third of the events table.
    """
    if not watermark.isdigit():
        raise ValueError(f"not a transaction id: {watermark!r}")
    tail = f"txid >= '{watermark}'::xid8"
    return f"""
WITH qtail AS MATERIALIZED (
    SELECT DISTINCT question_id FROM events WHERE {tail} AND question_id IS NOT NULL
),
stail AS MATERIALIZED (
    SELECT DISTINCT swarm_id FROM events WHERE {tail} AND swarm_id IS NOT NULL
),
facts AS (
    SELECT {QUESTION_COLUMNS} FROM metric_question_facts WHERE question_id NOT IN (SELECT question_id FROM qtail)
    UNION ALL
    SELECT {QUESTION_COLUMNS} FROM ({QUESTION_FACTS_SQL.format(ids="SELECT question_id FROM qtail")}) fresh
),
sfacts AS (
    SELECT {SWARM_COLUMNS} FROM metric_swarm_facts WHERE swarm_id NOT IN (SELECT swarm_id FROM stail)
    UNION ALL
    SELECT {SWARM_COLUMNS} FROM ({SWARM_FACTS_SQL.format(ids="SELECT swarm_id FROM stail")}) sfresh
),
credits AS (
    SELECT {CONTRIBUTION_COLUMNS} FROM metric_contributions
    UNION ALL
    SELECT {CONTRIBUTION_COLUMNS} FROM ({CONTRIBUTIONS_SQL.format(where="e." + tail)}) ctail
)
"""


async def watermark() -> str:
    rows = await fetch(f"SELECT {WATERMARK_SQL}::text AS w")
    return str(rows[0]["w"])


async def cte() -> str:
    return facts_cte(await watermark())


def _upsert(table: str, key: str, columns: str, select: str) -> str:
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in (c.strip() for c in columns.split(",")) if c != key)
    # Wrapped so the statement answers with the number of rows it wrote.
    return (f"WITH up AS (INSERT INTO {table} ({columns}) {select} ON CONFLICT ({key}) DO UPDATE SET {updates} "
            f"RETURNING 1) SELECT count(*)::int AS n FROM up")


_FOLD_QUESTIONS = _upsert(
    "metric_question_facts", "question_id", QUESTION_COLUMNS,
    QUESTION_FACTS_SQL.format(ids="SELECT question_id FROM events WHERE txid >= $1::text::xid8 "
                                  "AND txid < $2::text::xid8 AND question_id IS NOT NULL"),
)
_FOLD_CONTRIBUTIONS = (
    f"WITH up AS (INSERT INTO metric_contributions ({CONTRIBUTION_COLUMNS}) "
    f"{CONTRIBUTIONS_SQL.format(where='e.txid >= $1::text::xid8 AND e.txid < $2::text::xid8')} "
    f"ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*)::int AS n FROM up"
)
_FOLD_SWARMS = _upsert(
    "metric_swarm_facts", "swarm_id", SWARM_COLUMNS,
    SWARM_FACTS_SQL.format(ids="SELECT swarm_id FROM events WHERE txid >= $1::text::xid8 "
                               "AND txid < $2::text::xid8 AND swarm_id IS NOT NULL"),
)


@dataclass(frozen=True)
class RollupResult:
    ran: bool  # False when another rollup held the lock
    questions: int = 0
    swarms: int = 0


async def rollup() -> RollupResult:
    """Folds every finished transaction's events into the facts tables. Idempotent; safe to run concurrently."""
    async with in_transaction() as conn:
        _, rows = await conn.execute_query("SELECT pg_try_advisory_xact_lock($1) AS got", [_ROLLUP_LOCK])
        if not rows[0]["got"]:
            return RollupResult(ran=False)
        _, rows = await conn.execute_query(
            f"SELECT {WATERMARK_SQL}::text AS old, pg_snapshot_xmin(pg_current_snapshot())::text AS new"
        )
        old, new = rows[0]["old"], rows[0]["new"]
        _, questions = await conn.execute_query(_FOLD_QUESTIONS, [old, new])
        _, swarms = await conn.execute_query(_FOLD_SWARMS, [old, new])
        await conn.execute_query(_FOLD_CONTRIBUTIONS, [old, new])
        await conn.execute_query(
            "INSERT INTO metric_rollup_state (name, watermark, ran_at) VALUES ($1, $2::text::xid8, now()) "
            "ON CONFLICT (name) DO UPDATE SET watermark = EXCLUDED.watermark, ran_at = EXCLUDED.ran_at",
            [STATE, new],
        )
    return RollupResult(ran=True, questions=questions[0]["n"], swarms=swarms[0]["n"])


async def tail_size(limit: int = TAIL_LIMIT) -> int:
    """How many events the rollup has not folded yet, counted up to `limit` (it only has to be compared)."""
    mark = await watermark()
    rows = await fetch(f"SELECT count(*)::int AS n FROM (SELECT 1 FROM events WHERE txid >= '{mark}'::xid8 "
                       f"LIMIT {int(limit) + 1}) t")
    return int(rows[0]["n"])


async def fetch(sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    return list(await connections.get("default").execute_query_dict(sql, params or []))
