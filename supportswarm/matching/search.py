"""Hybrid similar-question search: pgvector neighbours and full-text matches in one SQL round trip.

The database returns the union of both candidate lists with every feature the fusion needs (cosine,
both ranks, the full-text score); `fuse` orders them in Python. Keeping the fusion out of SQL lets the
calibration bench compare full-text only, vector only and hybrid on exactly the same candidates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from tortoise import connections

from embeddings import Vectors

EMBEDDING_DIM = 384  # questions.embedding is vector(384): all-MiniLM-L6-v2 and its peers
# Candidates fetched per side. More than any page of results, so that fusion can promote an item
# ranked low on one side but high on the other, and the vote sees several questions per solution.
CANDIDATES = 50
RRF_K = 60  # the constant of Cormack et al. (2009); rank 1 scores 1/61
MAX_TERMS = 12  # full text: the rarest lexemes of the query retrieve the candidates
COMMON_SHARE = 0.1  # full text: lexemes in more than this share of the questions do not retrieve...
COMMON_FLOOR = 1000  # ...unless they are in fewer questions than this (small forums keep every word)
EXCERPT_CHARS = 280  # of each accepted answer, for suggestion lists (one more is read to know it goes on)


class Mode(StrEnum):
    HYBRID = "hybrid"  # the product: answer-level vote over both lists
    RRF = "rrf"  # reciprocal rank fusion of both question lists (for comparison)
    VECTOR = "vector"  # nearest neighbours only
    TEXT = "text"  # full text only


@dataclass(frozen=True, slots=True)
class Hit:
    """One candidate question with the evidence for it; `score` is set by `fuse`."""

    id: int
    external_id: str | None
    title: str
    accepted_answer_id: int | None
    solution: str | None  # a digest of the accepted answer's text: equal digests, same solution
    cosine: float | None  # query vs the stored vector; None when not (yet) embedded with this model
    vector_rank: int | None
    text_rank: int | None
    text_score: float  # share of the query's IDF weight that this question contains, 0..1
    excerpt: str | None = None  # the accepted answer's first EXCERPT_CHARS characters
    score: float = 0.0


def question_text(title: str, body: str) -> str:
    """What gets embedded for a question (and for a draft): the title carries most of the meaning."""
    return f"{title}\n{body}".strip()


# $1 query vector (real[], NULL: no vector side), $2 model name, $3 candidates per side,
# $4 query text (NULL: no full-text side), $5 a question id to leave out (0 for none).
#
# Vector side: HNSW over the current model's vectors. `relaxed_order` iterative scans (pgvector >= 0.8,
# set in 0002_matching.sql) may return them slightly out of order, so `v` sorts them again.
# Full-text side, BM25-style: the query's lexemes weighted by IDF (search_terms), at most MAX_TERMS of
# the rarest; each matching question scores the IDF of the lexemes it holds, normalised for its length
# (k1 = 1.2, b = 0.75; a lexeme counts once: questions are short). Lexemes in more than COMMON_SHARE of
# the questions do not retrieve: they barely rank, and their long posting lists are what would make the
# query slow at 100k questions.
_CANDIDATES_SQL = f"""
WITH vq AS MATERIALIZED (
    SELECT id, embedding <=> $1::real[]::vector AS dist
    FROM questions
    WHERE $1::real[] IS NOT NULL AND embedding_model = $2 AND status <> 'duplicate' AND id <> $5
    ORDER BY embedding <=> $1::real[]::vector
    LIMIT $3
), v AS (
    SELECT id, row_number() OVER (ORDER BY dist, id) AS r FROM vq
), totals AS MATERIALIZED (
    SELECT coalesce(max(ndoc), 1) AS docs,
           greatest(coalesce(max(nentry)::float8 / nullif(max(ndoc), 0), 1), 1) AS avglen
    FROM search_terms WHERE lexeme = ''
), terms AS MATERIALIZED (
    SELECT w.lexeme, plainto_tsquery('simple', w.lexeme) AS query,
           ln(1 + (n.docs - coalesce(st.ndoc, 0) + 0.5) / (coalesce(st.ndoc, 0) + 0.5)) AS idf
    FROM (SELECT DISTINCT unnest(tsvector_to_array(to_tsvector('english', $4::text))) AS lexeme) AS w
    CROSS JOIN totals AS n
    LEFT JOIN search_terms AS st ON st.lexeme = w.lexeme
    WHERE w.lexeme <> '' AND coalesce(st.ndoc, 0) <= greatest({COMMON_FLOOR}, n.docs * {COMMON_SHARE})
    ORDER BY idf DESC, w.lexeme
    LIMIT {MAX_TERMS}
), tq AS MATERIALIZED (
    SELECT q.id, sum(t.idf) AS matched,
           sum(t.idf) * 2.2 / (1.2 * (0.25 + 0.75 * length(q.search) / max(n.avglen)) + 1) AS bm25
    FROM terms AS t
    JOIN questions AS q ON q.search @@ t.query
    CROSS JOIN totals AS n
    WHERE q.status <> 'duplicate' AND q.id <> $5
    GROUP BY q.id
    ORDER BY bm25 DESC, q.id
    LIMIT $3
), t AS (
    SELECT id, matched / (SELECT sum(idf) FROM terms) AS share,
           row_number() OVER (ORDER BY bm25 DESC, id) AS r
    FROM tq
)
SELECT q.id, q.external_id, q.title, q.accepted_answer_id, md5(a.body) AS solution,
       left(a.body, {EXCERPT_CHARS + 1}) AS excerpt,
       CASE WHEN q.embedding_model = $2 THEN 1 - (q.embedding <=> $1::real[]::vector) END AS cosine,
       v.r AS vector_rank, t.r AS text_rank, coalesce(t.share, 0) AS text_score
FROM v FULL JOIN t ON v.id = t.id
JOIN questions q ON q.id = coalesce(v.id, t.id)
LEFT JOIN answers a ON a.id = q.accepted_answer_id
"""


async def candidates(
    vector: Vectors | None,
    text: str | None,
    *,
    model: str,
    per_side: int = CANDIDATES,
    exclude_id: int | None = None,
) -> list[Hit]:
    """Vector neighbours (of `model`'s vectors) and full-text matches, unordered, over visible questions.

    `vector` None leaves out the vector side, `text` None the full-text side.
    """
    query_vector = None if vector is None else [float(x) for x in vector]
    conn = connections.get("default")
    rows = await conn.execute_query_dict(_CANDIDATES_SQL, [query_vector, model, per_side, text, exclude_id or 0])
    return [_hit(row) for row in rows]


async def refresh_search_terms() -> None:
    """Recounts the document frequency of every lexeme (a few seconds at 100k questions; reads go on)."""
    await connections.get("default").execute_script("REFRESH MATERIALIZED VIEW CONCURRENTLY search_terms")


def _hit(row: dict[str, Any]) -> Hit:
    cosine = row["cosine"]
    return Hit(
        id=row["id"], external_id=row["external_id"], title=row["title"],
        accepted_answer_id=row["accepted_answer_id"], solution=row["solution"],
        cosine=None if cosine is None else float(cosine),
        vector_rank=row["vector_rank"], text_rank=row["text_rank"], text_score=float(row["text_score"]),
        excerpt=row["excerpt"],
    )


@dataclass(frozen=True, slots=True)
class Fusion:
    """How the two candidate lists become one ranking (calibrated by bench/matching.py)."""

    per_answer: int = 5  # neighbours of one solution that count towards its vote
    temperature: float = 0.05  # vote weight exp((cos - 1) / T): a close neighbour outweighs many far ones
    text_weight: float = 0.5  # share of the full-text leg (vote weight 1 / (rrf_k + rank)) in the hybrid vote
    rrf_k: int = RRF_K


DEFAULT_FUSION = Fusion()


def fuse(hits: Sequence[Hit], mode: Mode = Mode.HYBRID, fusion: Fusion = DEFAULT_FUSION) -> list[Hit]:
    """Best first, each with its `score`.

    HYBRID (the product): questions vote for their solution (equal accepted-answer text, else the
    question itself), weighted by closeness, plus a full-text leg; one question per solution is kept
    and `score` is that solution's share of the evidence (0..1, summing to 1 over the candidates).
    RRF: reciprocal rank fusion of both lists. VECTOR: cosine. TEXT: normalised ts_rank_cd.
    """
    if mode == Mode.HYBRID:
        return _vote(hits, fusion)
    if mode == Mode.VECTOR:
        scored = [replace(h, score=h.cosine) for h in hits if h.vector_rank is not None and h.cosine is not None]
    elif mode == Mode.TEXT:
        scored = [replace(h, score=h.text_score) for h in hits if h.text_rank is not None]
    else:
        scored = [replace(h, score=_rrf(h, fusion.rrf_k)) for h in hits]
    return sorted(scored, key=lambda h: (-h.score, h.id))


def _rrf(hit: Hit, k: int) -> float:
    return sum(1.0 / (k + rank) for rank in (hit.vector_rank, hit.text_rank) if rank is not None)


def solution_key(hit: Hit) -> str:
    return f"s:{hit.solution}" if hit.solution is not None else f"q:{hit.id}"


def _vote(hits: Sequence[Hit], fusion: Fusion) -> list[Hit]:
    groups: dict[str, list[Hit]] = {}
    for hit in hits:
        groups.setdefault(solution_key(hit), []).append(hit)
    vector_leg = _leg(groups, fusion.per_answer, lambda h: math.exp((h.cosine - 1.0) / fusion.temperature)
                      if h.vector_rank is not None and h.cosine is not None else 0.0)
    text_leg = _leg(groups, fusion.per_answer, lambda h: 1.0 / (fusion.rrf_k + h.text_rank)
                    if h.text_rank is not None else 0.0)
    weight = fusion.text_weight if any(text_leg.values()) else 0.0
    total = {key: (1.0 - weight) * vector_leg[key] + weight * text_leg[key] for key in groups}
    norm = sum(total.values()) or 1.0
    best = [replace(max(members, key=_closeness), score=total[key] / norm) for key, members in groups.items()]
    return sorted(best, key=lambda h: (-h.score, -(h.cosine or 0.0), h.id))


def _leg(groups: dict[str, list[Hit]], per_answer: int, weigh: Callable[[Hit], float]) -> dict[str, float]:
    raw = {key: sum(sorted((weigh(h) for h in members), reverse=True)[:per_answer]) for key, members in groups.items()}
    norm = sum(raw.values())
    return {key: value / norm if norm else 0.0 for key, value in raw.items()}


def _closeness(hit: Hit) -> tuple[float, float]:
    """The question that represents its solution: the closest by vector, else the best by text."""
    return (hit.cosine if hit.cosine is not None else -2.0, -(hit.text_rank or 10**6))
