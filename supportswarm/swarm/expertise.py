"""Who can help: expertise profiles built from what helpers actually answered well, and the rankings
that use them (invitations for a new swarm, the staff inbox ordered for its viewer).

A profile is the normalised weighted mean of the embeddings of a helper's evidence: accepted answers
(weight 3 + score), upvoted answers (weight = score, capped) and their messages in resolved swarms
(weight 2 per swarm, all of one swarm's messages as one text), plus the tags of those questions. It is
matched against the question's embedding (cosine, pgvector `<=>`) and tags, then weighted by presence
(online helpers first) and current load (open swarms they are in).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from tortoise import connections

from embeddings import Embedder
from supportswarm.accounts import permissions
from supportswarm.accounts.models import User
from supportswarm.realtime.broker import Broker, BrokerUnavailable
from supportswarm.swarm import services
from supportswarm.swarm.models import SwarmParticipant, SwarmStatus

log = logging.getLogger(__name__)

ONLINE_ROOM = "online"  # presence room of helpers with the inbox or a room open
DIM = 384
MAX_ANSWERS, MAX_SWARMS, TEXT_MAX = 50, 20, 2000
INVITE_TOP = 5  # best-matching non-staff helpers invited per round
INVITE_MIN_SCORE = 0.05
MAX_STAFF_INVITES = 10
HELPER_ROLES = [str(r) for r in permissions.HELPER_ROLES]


def vector_literal(vec: np.ndarray | Sequence[float]) -> str:
    return "[" + ",".join(f"{float(x):.6g}" for x in vec) + "]"


def parse_vector(text: str) -> np.ndarray:
    return np.asarray(json.loads(text), dtype=np.float32)


def _db() -> Any:
    return connections.get("default")


# --- profiles ------------------------------------------------------------------------------------------


@dataclass
class _Doc:
    user_id: int
    question_id: int
    text: str
    weight: float


_ANSWERS_SQL = """
SELECT * FROM (
  SELECT a.author_id AS user_id, a.question_id, q.title, a.body, a.is_accepted, a.score,
         row_number() OVER (PARTITION BY a.author_id ORDER BY a.is_accepted DESC, a.score DESC, a.id DESC) AS n
  FROM answers a JOIN questions q ON q.id = a.question_id
  WHERE a.author_id = ANY($1::int[]) AND (a.is_accepted OR a.score > 0)
    AND a.author_id IS DISTINCT FROM q.author_id
) ranked WHERE n <= $2"""

_SWARMS_SQL = """
SELECT * FROM (
  SELECT m.author_id AS user_id, s.question_id, q.title,
         string_agg(m.body, E'\\n' ORDER BY m.seq) AS body,
         row_number() OVER (PARTITION BY m.author_id ORDER BY max(s.resolved_at) DESC) AS n
  FROM swarm_messages m JOIN swarms s ON s.id = m.swarm_id JOIN questions q ON q.id = s.question_id
  WHERE s.status = 'resolved' AND m.author_id = ANY($1::int[]) AND m.author_id IS DISTINCT FROM q.author_id
  GROUP BY m.author_id, s.id, s.question_id, q.title
) ranked WHERE n <= $2"""


async def _evidence(user_ids: list[int]) -> list[_Doc]:
    docs = []
    for row in await _db().execute_query_dict(_ANSWERS_SQL, [user_ids, MAX_ANSWERS]):
        weight = (3.0 if row["is_accepted"] else 0.0) + min(max(row["score"], 0), 10)
        docs.append(_Doc(row["user_id"], row["question_id"], f"{row['title']}\n{row['body']}"[:TEXT_MAX], weight))
    for row in await _db().execute_query_dict(_SWARMS_SQL, [user_ids, MAX_SWARMS]):
        docs.append(_Doc(row["user_id"], row["question_id"], f"{row['title']}\n{row['body']}"[:TEXT_MAX], 2.0))
    return docs


async def _tags_of(question_ids: list[int]) -> dict[int, list[str]]:
    rows = await _db().execute_query_dict(
        "SELECT qt.question_id, t.name FROM question_tags qt JOIN tags t ON t.id = qt.tag_id "
        "WHERE qt.question_id = ANY($1::int[])", [question_ids])
    tags: dict[int, list[str]] = defaultdict(list)
    for row in rows:
        tags[row["question_id"]].append(row["name"])
    return tags


async def _helper_id_rows(expert_reputation: int) -> list[int]:
    rows = await _db().execute_query_dict(
        "SELECT id FROM users WHERE is_active AND (role = ANY($1::text[]) OR reputation >= $2)",
        [HELPER_ROLES, expert_reputation])
    return [r["id"] for r in rows]


async def rebuild_expertise(user_ids: list[int] | None = None, *, embedder: Embedder,
                            expert_reputation: int) -> int:
    """Recompute the profiles of `user_ids` (default: every helper). Returns how many were stored."""
    ids = user_ids if user_ids is not None else await _helper_id_rows(expert_reputation)
    if not ids:
        return 0
    docs = await _evidence(ids)
    tags = await _tags_of(sorted({d.question_id for d in docs}))
    vectors = embedder.encode([d.text for d in docs]) if docs else np.zeros((0, DIM), dtype=np.float32)
    by_user: dict[int, list[int]] = defaultdict(list)
    for i, doc in enumerate(docs):
        by_user[doc.user_id].append(i)
    for user_id in ids:
        rows = by_user.get(user_id, [])
        weights = np.asarray([docs[i].weight for i in rows], dtype=np.float32)
        profile: np.ndarray | None = (vectors[rows] * weights[:, None]).sum(axis=0) if rows else None
        norm = float(np.linalg.norm(profile)) if profile is not None else 0.0
        tag_weights: dict[str, float] = defaultdict(float)
        for i in rows:
            for tag in tags.get(docs[i].question_id, []):
                tag_weights[tag] += docs[i].weight
        await _store_profile(user_id, profile / norm if profile is not None and norm else None,
                             dict(tag_weights), len(rows))
    return len(ids)


async def _store_profile(user_id: int, vec: np.ndarray | None, tags: dict[str, float], evidence: int) -> None:
    await _db().execute_query(
        "INSERT INTO helper_expertise (user_id, embedding, tags, evidence, updated_at) "
        "VALUES ($1, $2::text::vector, $3::text::jsonb, $4, now()) ON CONFLICT (user_id) DO UPDATE SET "
        "embedding = EXCLUDED.embedding, tags = EXCLUDED.tags, evidence = EXCLUDED.evidence, updated_at = now()",
        [user_id, vector_literal(vec) if vec is not None else None, json.dumps(tags), evidence])


# --- matching a question -------------------------------------------------------------------------------


async def question_vector(question_id: int, *, embedder: Embedder) -> np.ndarray | None:
    """The stored embedding, or (not embedded yet) one computed now from title and body."""
    rows = await _db().execute_query_dict(
        "SELECT embedding::text AS e, title, body FROM questions WHERE id = $1", [question_id])
    if not rows:
        return None
    if rows[0]["e"]:
        return parse_vector(rows[0]["e"])
    vec: np.ndarray = embedder.encode([f"{rows[0]['title']}\n{rows[0]['body']}"[:TEXT_MAX]])[0]
    return vec


def tag_overlap(question_tags: Sequence[str], profile_tags: dict[str, float]) -> float:
    """Share of the question's tags the helper has answered well (0..1)."""
    if not question_tags:
        return 0.0
    return sum(1 for t in question_tags if profile_tags.get(t, 0) > 0) / len(question_tags)


@dataclass
class HelperMatch:
    user_id: int
    username: str
    role: str
    on_duty: bool
    similarity: float
    tags: float
    online: bool
    load: int
    score: float


_CANDIDATES_SQL = """
SELECT u.id, u.username, u.role, u.on_duty,
       CASE WHEN e.embedding IS NULL OR $3::text IS NULL THEN 0
            ELSE 1 - (e.embedding <=> $3::text::vector) END AS similarity,
       coalesce(e.tags, '{}'::jsonb)::text AS tags,
       (SELECT count(*) FROM swarm_participants p JOIN swarms s ON s.id = p.swarm_id
         WHERE p.user_id = u.id AND s.status = 'open' AND p.joined_at IS NOT NULL AND p.left_at IS NULL) AS load
FROM users u LEFT JOIN helper_expertise e ON e.user_id = u.id
WHERE u.is_active AND (u.role = ANY($1::text[]) OR u.reputation >= $2) AND NOT (u.id = ANY($4::int[]))"""


def match_score(similarity: float, tags: float, *, online: bool, load: int) -> float:
    """Match (embedding 70%, tags 30%), halved when offline, divided by 1 + load/2."""
    return (0.7 * max(similarity, 0.0) + 0.3 * tags) * (1.0 if online else 0.5) / (1 + 0.5 * load)


async def online_helpers(broker: Broker) -> set[int]:
    try:
        return services.online_user_ids(await broker.presence(ONLINE_ROOM))
    except BrokerUnavailable:
        return set()


async def rank_helpers(question_id: int, *, embedder: Embedder, broker: Broker, expert_reputation: int,
                       exclude: set[int]) -> list[HelperMatch]:
    """Every helper but `exclude`, best first."""
    vec = await question_vector(question_id, embedder=embedder)
    qtags = (await _tags_of([question_id])).get(question_id, [])
    rows = await _db().execute_query_dict(_CANDIDATES_SQL, [
        HELPER_ROLES, expert_reputation, vector_literal(vec) if vec is not None else None, sorted(exclude)])
    online = await online_helpers(broker)
    matches = []
    for row in rows:
        overlap = tag_overlap(qtags, json.loads(row["tags"]))
        sim = float(row["similarity"])
        score = match_score(sim, overlap, online=row["id"] in online, load=int(row["load"]))
        matches.append(HelperMatch(row["id"], row["username"], row["role"], row["on_duty"], round(sim, 4),
                                   round(overlap, 3), row["id"] in online, int(row["load"]), round(score, 4)))
    return sorted(matches, key=lambda m: (-m.score, m.user_id))


def choose_invitees(matches: list[HelperMatch], *, rounds: int = 1) -> list[HelperMatch]:
    """On-duty staff, plus the best-matching other helpers (INVITE_TOP per round)."""
    staff = [m for m in matches if m.on_duty and m.role in {"staff", "lead", "admin"}][:MAX_STAFF_INVITES]
    others = [m for m in matches if m not in staff and m.score >= INVITE_MIN_SCORE][: INVITE_TOP * rounds]
    return staff + others


async def invite_helpers(swarm_id: int, *, embedder: Embedder, broker: Broker, expert_reputation: int,
                         rounds: int = 1) -> list[int]:
    """The INVITE_HELPERS job: record invitations and tell each newly invited helper live. Idempotent."""
    swarm = await services.get_swarm(swarm_id)
    if swarm.status != SwarmStatus.OPEN:
        return []
    exclude = await services._asker_ids(swarm)
    exclude |= set(await SwarmParticipant.filter(swarm_id=swarm.id, invited_at__isnull=False)
                   .values_list("user_id", flat=True))  # type: ignore[arg-type]
    matches = await rank_helpers(swarm.question.id, embedder=embedder, broker=broker,
                                 expert_reputation=expert_reputation, exclude=exclude)
    chosen = choose_invitees(matches, rounds=rounds)
    at = datetime.now(UTC)
    for m in chosen:
        await _db().execute_query(
            "INSERT INTO swarm_participants (swarm_id, user_id, invited_at, invite_score) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (swarm_id, user_id) DO UPDATE SET invited_at = coalesce(swarm_participants.invited_at, "
            "EXCLUDED.invited_at), invite_score = EXCLUDED.invite_score", [swarm.id, m.user_id, at, m.score])
    summary = services.swarm_dict(swarm, swarm.question)
    for m in chosen:
        await services.notify_invitation(broker, m.user_id, summary, m.score)
    if chosen:
        await services.notify_inbox(broker, swarm.id, "updated")
    log.info("swarm %s: invited %s", swarm.id, [asdict(m) for m in chosen])
    return [m.user_id for m in chosen]


# --- the inbox -----------------------------------------------------------------------------------------


_INBOX_SQL = """
SELECT s.id, s.question_id, s.opened_at, s.reason, s.last_seq, q.title,
       array(SELECT t.name FROM question_tags qt JOIN tags t ON t.id = qt.tag_id
             WHERE qt.question_id = q.id ORDER BY t.name) AS tags,
       (SELECT count(*) FROM swarm_participants p WHERE p.swarm_id = s.id AND p.joined_at IS NOT NULL
          AND p.left_at IS NULL) AS members,
       vp.invited_at IS NOT NULL AS invited, vp.invite_score,
       (vp.joined_at IS NOT NULL AND vp.left_at IS NULL) AS joined,
       CASE WHEN e.embedding IS NULL OR q.embedding IS NULL THEN NULL
            ELSE 1 - (q.embedding <=> e.embedding) END AS similarity,
       coalesce(e.tags, '{}'::jsonb)::text AS profile_tags
FROM swarms s JOIN questions q ON q.id = s.question_id
LEFT JOIN swarm_participants vp ON vp.swarm_id = s.id AND vp.user_id = $1
LEFT JOIN helper_expertise e ON e.user_id = $1
WHERE s.status = 'open' AND ($2 OR q.author_id = $1 OR EXISTS (
      SELECT 1 FROM swarm_links l JOIN questions lq ON lq.id = l.question_id
      WHERE l.swarm_id = s.id AND lq.author_id = $1))
ORDER BY s.opened_at LIMIT 1000"""


def inbox_score(*, match: float, waiting_s: float, sla_minutes: int, urgent: bool, invited: bool) -> float:
    """Match 50%, waiting (saturating at the SLA) 25%, urgency 15%, a personal invitation 10%."""
    waiting = min(waiting_s / max(sla_minutes * 60, 1), 1.0)
    return 0.5 * max(match, 0.0) + 0.25 * waiting + 0.15 * urgent + 0.1 * invited


async def ranked_inbox(viewer: User, *, expert_reputation: int, urgent_tags: Sequence[str], sla_minutes: int,
                       limit: int = 50) -> list[dict[str, Any]]:
    """Open swarms the viewer may join, ranked for them: helpers see all, customers their own."""
    helper = permissions.is_helper(viewer, expert_reputation=expert_reputation)
    rows = await _db().execute_query_dict(_INBOX_SQL, [viewer.id, helper])
    at = datetime.now(UTC)
    items = []
    for row in rows:
        tags = list(row["tags"])
        overlap = tag_overlap(tags, json.loads(row["profile_tags"]))
        sim = row["similarity"]
        match = 0.7 * float(sim) + 0.3 * overlap if sim is not None else float(row["invite_score"] or overlap * 0.5)
        waiting = (at - row["opened_at"]).total_seconds()
        urgent = bool(set(tags) & set(urgent_tags))
        score = inbox_score(match=match, waiting_s=waiting, sla_minutes=sla_minutes, urgent=urgent,
                            invited=row["invited"])
        items.append({
            "id": row["id"], "question_id": row["question_id"], "title": row["title"], "tags": tags,
            "reason": row["reason"], "opened_at": row["opened_at"].isoformat(), "waiting_s": round(waiting),
            "members": row["members"], "messages": row["last_seq"], "urgent": urgent, "invited": row["invited"],
            "joined": row["joined"], "match": round(match, 3), "score": round(score, 4),
        })
    items.sort(key=lambda i: (-i["score"], i["opened_at"]))
    return items[:limit]
