"""Emergent problems: bursts of similar new questions, shown to leads and turned into incident swarms.

The DETECT_EMERGENT job takes the new, unresolved questions of a sliding window with their
embeddings, groups them (`clustering.leader_clusters`), and stores every group of at least
`min_size` questions as a cluster. A cluster that shares a question with one already open is
the same burst seen again: it grows instead of being shown twice. A lead (or staff) opens one
incident swarm for a cluster in one click, or `auto_open` does it; the swarm belongs to the
cluster's most typical question and every other question of the cluster is linked to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from tortoise.transactions import in_transaction

from supportswarm.accounts import permissions
from supportswarm.accounts.models import User
from supportswarm.errors import Conflict, NotFound
from supportswarm.jobs import JobQueue
from supportswarm.metrics.clustering import Cluster, leader_clusters
from supportswarm.metrics.rollup import fetch
from supportswarm.realtime.broker import Broker
from supportswarm.swarm import services as swarms

# One detection at a time across processes (the cron and a dashboard kick may overlap).
_DETECT_LOCK = 5_502_772
STATE = "emergent"


@dataclass(frozen=True, kw_only=True)
class EmergentConfig:
    window_minutes: int = 60
    # Cosine similarity of all-MiniLM-L6-v2 embeddings, calibrated on BANKING77 paraphrases with
    # bench/emergent_threshold.py: at 0.65, with 50 unrelated questions per window, 84% of bursts of
    # 10 paraphrases are found (72% of each on average) at precision 0.93, with 0.11 spurious clusters per window.
    threshold: float = 0.65
    min_size: int = 5
    max_questions: int = 2_000  # the newest ones of the window, bounding the n^2 similarity matrix
    auto_open: bool = False  # open the incident swarm without waiting for a click
    show_hours: int = 24  # the dashboard lists clusters with a question this recent


@dataclass(frozen=True)
class _Candidate:
    id: int
    author_id: int | None
    title: str
    created_at: datetime


async def _candidates(now: datetime, config: EmergentConfig) -> tuple[list[_Candidate], np.ndarray]:
    """New, unresolved, embedded questions of the window, minus those a lead already decided on."""
    rows = await fetch(
        """SELECT q.id, q.author_id, q.title, q.created_at, q.embedding::text AS embedding FROM questions q
           WHERE q.created_at > $1 AND q.created_at <= $2 AND q.status IN ('open', 'swarming')
             AND q.embedding IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM emergent_cluster_questions cq
                             JOIN emergent_clusters c ON c.id = cq.cluster_id
                             WHERE cq.question_id = q.id AND c.status <> 'open')
           ORDER BY q.created_at DESC LIMIT $3""",
        [now - timedelta(minutes=config.window_minutes), now, config.max_questions],
    )
    found = [_Candidate(r["id"], r["author_id"], r["title"], r["created_at"]) for r in rows]
    vectors = np.array([json.loads(r["embedding"]) for r in rows], dtype=np.float32).reshape(len(rows), -1)
    return found, vectors


async def detect(*, now: datetime | None = None, config: EmergentConfig = EmergentConfig(),
                 broker: Broker | None = None, jobs: JobQueue | None = None) -> list[int]:
    """Finds the bursts of the window and stores them; returns the ids of the clusters it created or grew.

    With `config.auto_open` (and a broker and job queue) each of them gets its incident swarm at once.
    """
    now = now or datetime.now(UTC)
    found, vectors = await _candidates(now, config)
    clusters = leader_clusters(vectors, threshold=config.threshold, min_size=config.min_size)
    touched: list[int] = []
    async with in_transaction() as conn:
        _, rows = await conn.execute_query("SELECT pg_try_advisory_xact_lock($1) AS got", [_DETECT_LOCK])
        if rows[0]["got"]:
            for cluster in clusters:
                touched.append(await _store(conn, cluster, found, vectors))
            await conn.execute_query(
                "INSERT INTO metric_rollup_state (name, watermark, ran_at) VALUES ($1, '0', now()) "
                "ON CONFLICT (name) DO UPDATE SET ran_at = EXCLUDED.ran_at", [STATE])
    if config.auto_open and broker is not None and jobs is not None:
        for cluster_id in touched:
            await open_incident(cluster_id, user=None, broker=broker, jobs=jobs)
    return touched


async def _store(conn: Any, cluster: Cluster, found: list[_Candidate], vectors: np.ndarray) -> int:
    """Creates the cluster, or grows the open one that already holds any of its questions."""
    rep = found[cluster.representative]
    sims = vectors[cluster.members] @ vectors[cluster.representative]
    ids = [found[m].id for m in cluster.members]
    _, existing = await conn.execute_query(
        "SELECT min(cq.cluster_id) AS id FROM emergent_cluster_questions cq JOIN emergent_clusters c "
        "ON c.id = cq.cluster_id WHERE c.status = 'open' AND cq.question_id = ANY($1::int[])", [ids])
    cluster_id = existing[0]["id"]
    if cluster_id is None:
        created = await conn.execute_query_dict(
            "INSERT INTO emergent_clusters (label, representative_question_id, size, askers, first_asked_at, "
            "last_asked_at, cohesion) VALUES ($1, $2, 0, 0, $3, $3, $4) RETURNING id",
            [rep.title, rep.id, rep.created_at, cluster.cohesion])
        cluster_id = created[0]["id"]
    else:
        await conn.execute_query(
            "UPDATE emergent_clusters SET label = $2, representative_question_id = $3, cohesion = $4, "
            "updated_at = now() WHERE id = $1", [cluster_id, rep.title, rep.id, cluster.cohesion])
    await conn.execute_query(
        "INSERT INTO emergent_cluster_questions (cluster_id, question_id, similarity) "
        "SELECT $1, unnest($2::int[]), unnest($3::float8[]) ON CONFLICT DO NOTHING",
        [cluster_id, ids, [float(s) for s in sims]])
    await conn.execute_query(
        """UPDATE emergent_clusters c SET size = m.size, askers = m.askers, first_asked_at = m.first,
                  last_asked_at = m.last
           FROM (SELECT count(*) AS size, count(DISTINCT coalesce(q.author_id, -q.id)) AS askers,
                        min(q.created_at) AS first, max(q.created_at) AS last
                 FROM emergent_cluster_questions cq JOIN questions q ON q.id = cq.question_id
                 WHERE cq.cluster_id = $1) m
           WHERE c.id = $1""", [cluster_id])
    return int(cluster_id)


def headline(cluster: dict[str, Any]) -> str:
    """'12 customers in 40 minutes: payment page spins forever'."""
    minutes = max(1, round((cluster["last_asked_at"] - cluster["first_asked_at"]).total_seconds() / 60))
    people = f"{cluster['askers']} customer{'s' if cluster['askers'] != 1 else ''}"
    return f"{people} in {minutes} minute{'s' if minutes != 1 else ''}: {cluster['label']}"


async def list_clusters(*, now: datetime | None = None, config: EmergentConfig = EmergentConfig(),
                        limit: int = 10) -> list[dict[str, Any]]:
    """Open clusters and incidents with a question asked in the last `show_hours`, biggest first."""
    now = now or datetime.now(UTC)
    rows = await fetch(
        """SELECT c.id, c.status, c.label, c.size, c.askers, c.first_asked_at, c.last_asked_at, c.cohesion,
                  c.swarm_id, c.representative_question_id, c.detected_at,
                  (SELECT json_agg(json_build_object('id', q.id, 'title', q.title) ORDER BY cq.similarity DESC)
                     FROM emergent_cluster_questions cq JOIN questions q ON q.id = cq.question_id
                    WHERE cq.cluster_id = c.id) AS questions
           FROM emergent_clusters c WHERE c.status IN ('open', 'incident') AND c.last_asked_at > $1
           ORDER BY c.status = 'open' DESC, c.size DESC, c.id LIMIT $2""",
        [now - timedelta(hours=config.show_hours), limit])
    return [_cluster_dict(r) for r in rows]


def _cluster_dict(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["questions"] = json.loads(row["questions"]) if isinstance(row["questions"], str) else row["questions"] or []
    out["headline"] = headline(row)
    for key in ("first_asked_at", "last_asked_at", "detected_at"):
        out[key] = row[key].isoformat()
    out["cohesion"] = round(float(row["cohesion"]), 3)
    return out


async def _claim(cluster_id: int, user: User | None) -> dict[str, Any]:
    """Marks the cluster as becoming an incident; exactly one caller gets it (a double click, two leads)."""
    rows = await fetch(
        "UPDATE emergent_clusters SET status = 'incident', decided_by_id = $2, decided_at = now(), "
        "updated_at = now() WHERE id = $1 AND status <> 'incident' RETURNING id, status, swarm_id",
        [cluster_id, user.id if user else None])
    if rows:
        return rows[0]
    current = await fetch("SELECT id, status, swarm_id FROM emergent_clusters WHERE id = $1", [cluster_id])
    if not current:
        raise NotFound(f"no emergent cluster with id {cluster_id}")
    if current[0]["swarm_id"] is None:
        raise Conflict("this incident swarm is being opened right now; reload in a moment")
    return {**current[0], "existing": True}


async def open_incident(cluster_id: int, *, user: User | None, broker: Broker, jobs: JobQueue) -> dict[str, Any]:
    """Opens one incident swarm for the cluster and links all its questions. Idempotent.

    `user` is the lead or staff member who clicked; None when `auto_open` does it.
    """
    if user is not None:
        permissions.ensure(permissions.can_open_incident(user), "only staff and leads can open incident swarms")
    claimed = await _claim(cluster_id, user)
    if claimed.get("existing"):
        return await _incident(cluster_id)
    members = [r["question_id"] for r in await fetch(
        "SELECT cq.question_id FROM emergent_cluster_questions cq JOIN questions q ON q.id = cq.question_id "
        "WHERE cq.cluster_id = $1 AND q.status <> 'duplicate' ORDER BY cq.similarity DESC, q.id", [cluster_id])]
    if not members:
        await fetch("UPDATE emergent_clusters SET status = 'open' WHERE id = $1 RETURNING id", [cluster_id])
        raise Conflict("every question of this cluster is closed as a duplicate", field="cluster")
    try:
        swarm = await swarms.open_swarm(members[0], opened_by=user, reason="incident", broker=broker, jobs=jobs)
        await swarms.link_questions_to_swarm(swarm.id, members[1:], broker=broker)
    except Exception:
        await fetch("UPDATE emergent_clusters SET status = 'open' WHERE id = $1 RETURNING id", [cluster_id])
        raise
    async with in_transaction() as conn:
        await conn.execute_query(
            "INSERT INTO incident_questions (swarm_id, question_id, cluster_id) SELECT $1, unnest($2::int[]), $3 "
            "ON CONFLICT DO NOTHING", [swarm.id, members, cluster_id])
        await conn.execute_query("UPDATE emergent_clusters SET swarm_id = $2 WHERE id = $1", [cluster_id, swarm.id])
    return await _incident(cluster_id)


async def _incident(cluster_id: int) -> dict[str, Any]:
    rows = await fetch(
        "SELECT c.id AS cluster_id, c.swarm_id, c.label, "
        "coalesce(array_agg(i.question_id ORDER BY i.question_id) FILTER (WHERE i.question_id IS NOT NULL), '{}') "
        "AS question_ids FROM emergent_clusters c LEFT JOIN incident_questions i ON i.cluster_id = c.id "
        "WHERE c.id = $1 GROUP BY c.id", [cluster_id])
    out = dict(rows[0])
    out["question_ids"] = list(out["question_ids"])
    out["swarm_url"] = f"/swarms/{out['swarm_id']}"
    return out


async def dismiss(cluster_id: int, *, user: User) -> None:
    """Hides an open cluster; its questions are not clustered again."""
    permissions.ensure(permissions.can_open_incident(user), "only staff and leads can dismiss emergent clusters")
    rows = await fetch(
        "UPDATE emergent_clusters SET status = 'dismissed', decided_by_id = $2, decided_at = now(), "
        "updated_at = now() WHERE id = $1 AND status = 'open' RETURNING id", [cluster_id, user.id])
    if not rows:
        exists = await fetch("SELECT status FROM emergent_clusters WHERE id = $1", [cluster_id])
        if not exists:
            raise NotFound(f"no emergent cluster with id {cluster_id}")
        raise Conflict(f"this cluster is already {exists[0]['status']}")


async def last_detection() -> datetime | None:
    rows = await fetch("SELECT ran_at FROM metric_rollup_state WHERE name = $1", [STATE])
    return rows[0]["ran_at"] if rows else None
