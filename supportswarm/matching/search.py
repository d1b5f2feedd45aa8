"""Hybrid similar-question search: pgvector neighbours and IDF-weighted full-text matches.

Two statements: the full-text one needs no vector, so `find_similar` runs it while the query is being
embedded; the vector one then returns the union of both candidate lists with every feature the fusion
needs (cosine, both ranks, the full-text score). `fuse` orders them in Python, which lets the
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
from supportswarm.matching import trigrams

EMBEDDING_DIM = 384  # questions.embedding is vector(384): all-MiniLM-L6-v2 and its peers
# Candidates fetched per side. More than any page of results, so that fusion can promote an item
# ranked low on one side but high on the other, and the vote sees several questions per solution.
CANDIDATES = 50
MAX_TERMS = 12  # full text: the rarest lexemes of the query that rank the candidates
TEXT_BUDGET = 1000  # full text: the rarest lexemes retrieve while their posting lists add up to this
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
    density: float | None = None  # mean cosine to its nearest questions (matching/density.py); None: not yet
    score: float = 0.0


def question_text(title: str, body: str) -> str:
    """What gets embedded for a question (and for a draft): the title carries most of the meaning."""
    return f"{title}\n{body}".strip()


# Full-text side, BM25-style, on its own so that it can run while the query is being embedded.
# $1 query text, $2 candidates, $3 a question id to leave out (0 for none).
# The query's lexemes are weighted by IDF (search_terms); a matching question scores the IDF of the
# lexemes it holds (at most MAX_TERMS, the rarest), normalised for its length (k1 = 1.2, b = 0.75; a
# lexeme counts once: questions are short). Only the rarest lexemes *retrieve* through the GIN index,
# as long as their posting lists add up to TEXT_BUDGET rows: a common word ("card") would drag in a
# large share of the forum for little ranking value, which is what made full-text ranking slow at 100k.
_TEXT_SQL = f"""
WITH totals AS MATERIALIZED (
    SELECT coalesce(max(ndoc), 1) AS docs,
           greatest(coalesce(max(nentry)::float8 / nullif(max(ndoc), 0), 1), 1) AS avglen
    FROM search_terms WHERE lexeme = ''
), words AS (
    SELECT w.lexeme, coalesce(st.ndoc, 0) AS df,
           ln(1 + (n.docs - coalesce(st.ndoc, 0) + 0.5) / (coalesce(st.ndoc, 0) + 0.5)) AS idf
    FROM (SELECT DISTINCT unnest(tsvector_to_array(to_tsvector('english', $1::text))) AS lexeme) AS w
    CROSS JOIN totals AS n
    LEFT JOIN search_terms AS st ON st.lexeme = w.lexeme
    WHERE w.lexeme <> ''
    ORDER BY idf DESC, w.lexeme
    LIMIT {MAX_TERMS}
), terms AS MATERIALIZED (
    SELECT lexeme, idf, plainto_tsquery('simple', lexeme) AS query,
           sum(df) OVER (ORDER BY idf DESC, lexeme) AS postings
    FROM words
), retrieval AS MATERIALIZED (
    SELECT websearch_to_tsquery('simple', string_agg(lexeme, ' or ')) AS query
    FROM terms WHERE postings <= {TEXT_BUDGET}
), matches AS MATERIALIZED (
    SELECT q.id, length(q.search) AS len, (SELECT sum(t.idf) FROM terms AS t WHERE q.search @@ t.query) AS matched
    FROM retrieval AS r JOIN questions AS q ON q.search @@ r.query
    WHERE q.status <> 'duplicate' AND q.hidden_at IS NULL AND q.id <> $3
)
SELECT m.id, m.matched / (SELECT sum(idf) FROM terms) AS text_score,
       row_number() OVER (ORDER BY m.matched * 2.2 / (1.2 * (0.25 + 0.75 * m.len / n.avglen) + 1) DESC, m.id)
           AS text_rank
FROM matches AS m CROSS JOIN totals AS n
ORDER BY text_rank
LIMIT $2
"""

# Vector side, and what every candidate needs for fusion and display.
# $1 query vector (real[], NULL: no vector side), $2 model name, $3 candidates, $4 a question id to
# leave out (0 for none), $5 the full-text candidates' ids (their cosine and details come along).
# HNSW over the current model's vectors; `relaxed_order` iterative scans (pgvector >= 0.8, set in
# 0002_matching.sql) may return them slightly out of order, so `v` sorts them again.
_VECTOR_SQL = f"""
WITH vq AS MATERIALIZED (
    SELECT id, embedding <=> $1::real[]::vector AS dist
    FROM questions
    WHERE $1::real[] IS NOT NULL AND embedding_model = $2 AND status <> 'duplicate' AND hidden_at IS NULL AND id <> $4
    ORDER BY embedding <=> $1::real[]::vector
    LIMIT $3
), v AS (
    SELECT id, row_number() OVER (ORDER BY dist, id) AS r FROM vq
), ids AS (
    SELECT coalesce(v.id, x.id) AS id, v.r FROM v FULL JOIN unnest($5::int[]) AS x(id) ON x.id = v.id
)
SELECT q.id, q.external_id, q.title, a.id AS accepted_answer_id, md5(a.body) AS solution,
       left(a.body, {EXCERPT_CHARS + 1}) AS excerpt, ids.r AS vector_rank, q.density,
       CASE WHEN q.embedding_model = $2 THEN 1 - (q.embedding <=> $1::real[]::vector) END AS cosine
FROM ids JOIN questions AS q ON q.id = ids.id
LEFT JOIN answers AS a ON a.id = q.accepted_answer_id AND a.hidden_at IS NULL
"""

TextHits = dict[int, tuple[int, float]]  # question id -> (text rank, text score)


async def text_candidates(text: str | None, *, per_side: int = CANDIDATES, exclude_id: int | None = None) -> TextHits:
    """The best full-text matches over visible questions: id -> (rank from 1, IDF share matched)."""
    if text is None:
        return {}
    rows = await connections.get("default").execute_query_dict(_TEXT_SQL, [text, per_side, exclude_id or 0])
    return {r["id"]: (r["text_rank"], float(r["text_score"])) for r in rows}


async def vector_candidates(
    vector: Vectors | None, text_hits: TextHits, *, model: str, per_side: int = CANDIDATES,
    exclude_id: int | None = None,
) -> list[Hit]:
    """The nearest questions by `model`'s vectors, merged with `text_hits` into candidate `Hit`s."""
    query_vector = None if vector is None else [float(x) for x in vector]
    rows = await connections.get("default").execute_query_dict(
        _VECTOR_SQL, [query_vector, model, per_side, exclude_id or 0, list(text_hits)]
    )
    return [_hit(row, text_hits.get(row["id"])) for row in rows]


async def candidates(
    vector: Vectors | None,
    text: str | None,
    *,
    model: str,
    per_side: int = CANDIDATES,
    exclude_id: int | None = None,
) -> list[Hit]:
    """Vector neighbours (of `model`'s vectors) and full-text matches, unordered, over visible questions.

    `vector` None leaves out the vector side, `text` None the full-text side. Two statements; when the
    query vector is still being computed, call `text_candidates` first and overlap it (see services).
    """
    text_hits = await text_candidates(text, per_side=per_side, exclude_id=exclude_id)
    return await vector_candidates(vector, text_hits, model=model, per_side=per_side, exclude_id=exclude_id)


async def refresh_search_terms() -> None:
    """Recounts the document frequency of every lexeme (a few seconds at 100k questions; reads go on)."""
    await connections.get("default").execute_script("REFRESH MATERIALIZED VIEW CONCURRENTLY search_terms")


def _hit(row: dict[str, Any], text: tuple[int, float] | None) -> Hit:
    cosine = row["cosine"]
    return Hit(
        id=row["id"], external_id=row["external_id"], title=row["title"],
        accepted_answer_id=row["accepted_answer_id"], solution=row["solution"],
        cosine=None if cosine is None else float(cosine), vector_rank=row["vector_rank"],
        text_rank=None if text is None else text[0], text_score=0.0 if text is None else text[1],
        excerpt=row["excerpt"], density=row["density"],
    )


@dataclass(frozen=True, slots=True)
class Fusion:
    """How the two candidate lists become one ranking (calibrated by bench/matching.py)."""

    per_answer: int = 5  # neighbours of one solution that count towards its vote
    temperature: float = 0.07  # vote weight exp((cos' - 1) / T): a close neighbour outweighs many far ones
    text_weight: float = 0.25  # share of the full-text leg (vote weight 1 / (rrf_k + rank)) in the hybrid vote
    rrf_k: int = 10
    density_weight: float = 0.5  # cos' = cos - density_weight x the question's density: hubs lose their pull
    # Share of the character-trigram leg (query vs title, matching/trigrams.py; vote weight
    # exp((similarity - 1) / trigram_temperature)): closeness of wording, misspellings included. These two and
    # density_weight were chosen together by 5-fold cross-validation on BANKING77 train.csv (bench/README.md).
    trigram_weight: float = 0.25
    trigram_temperature: float = 0.1


DEFAULT_FUSION = Fusion()


def fuse(hits: Sequence[Hit], mode: Mode = Mode.HYBRID, fusion: Fusion = DEFAULT_FUSION, *,
         query: str | None = None) -> list[Hit]:
    """Best first, each with its `score`.

    HYBRID (the product): questions vote for their solution (equal accepted-answer text, else the
    question itself), weighted by closeness corrected for hubness (`density`), plus a full-text leg
    and, given the `query` text, a character-trigram leg; one question per solution is kept and `score`
    is that solution's share of the evidence (0..1, summing to 1 over the candidates).
    RRF: reciprocal rank fusion of both lists. VECTOR: cosine. TEXT: normalised ts_rank_cd.
    """
    if mode == Mode.HYBRID:
        return _vote(hits, fusion, query)
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


def _vote(hits: Sequence[Hit], fusion: Fusion, query: str | None) -> list[Hit]:
    groups: dict[str, list[Hit]] = {}
    for hit in hits:
        groups.setdefault(solution_key(hit), []).append(hit)
    adjusted = _density_adjusted(hits, fusion.density_weight)
    vector_leg = _leg(groups, fusion.per_answer, lambda h: math.exp((adjusted[h.id] - 1.0) / fusion.temperature)
                      if h.vector_rank is not None and h.id in adjusted else 0.0)
    text_leg = _leg(groups, fusion.per_answer, lambda h: 1.0 / (fusion.rrf_k + h.text_rank)
                    if h.text_rank is not None else 0.0)
    weight = fusion.text_weight if any(text_leg.values()) else 0.0
    words = {key: (1.0 - weight) * vector_leg[key] + weight * text_leg[key] for key in groups}
    chars = _trigram_leg(groups, fusion, query)
    share = fusion.trigram_weight if any(chars.values()) else 0.0
    total = {key: (1.0 - share) * words[key] + share * chars.get(key, 0.0) for key in groups}
    norm = sum(total.values()) or 1.0
    best = [replace(max(members, key=_closeness), score=total[key] / norm) for key, members in groups.items()]
    return sorted(best, key=lambda h: (-h.score, -(h.cosine or 0.0), h.id))


def _trigram_leg(groups: dict[str, list[Hit]], fusion: Fusion, query: str | None) -> dict[str, float]:
    """Each solution's share of the character-trigram evidence: every candidate votes by how much of
    its title's spelling it shares with the query. Empty without a query (or a weight)."""
    if not query or fusion.trigram_weight <= 0.0 or not trigrams.trigrams(query):
        return {}
    return _leg(groups, fusion.per_answer,
                lambda h: math.exp((trigrams.similarity(query, h.title) - 1.0) / fusion.trigram_temperature))


def _density_adjusted(hits: Sequence[Hit], weight: float) -> dict[int, float]:
    """Each embedded candidate's cosine less `weight` x its density (CSLS-style hubness correction). A
    question whose density is not computed yet gets the candidates' mean: neither favoured nor punished."""
    known = [h.density for h in hits if h.density is not None and h.cosine is not None]
    fallback = sum(known) / len(known) if known else 0.0
    return {h.id: h.cosine - weight * (fallback if h.density is None else h.density)
            for h in hits if h.cosine is not None}


def _leg(groups: dict[str, list[Hit]], per_answer: int, weigh: Callable[[Hit], float]) -> dict[str, float]:
    raw = {key: sum(sorted((weigh(h) for h in members), reverse=True)[:per_answer]) for key, members in groups.items()}
    norm = sum(raw.values())
    return {key: value / norm if norm else 0.0 for key, value in raw.items()}


def _closeness(hit: Hit) -> tuple[float, float]:
    """The question that represents its solution: the closest by vector, else the best by text."""
    return (hit.cosine if hit.cosine is not None else -2.0, -(hit.text_rank or 10**6))
