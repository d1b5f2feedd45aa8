"""Similar questions and the answer/ask decision; embedding questions (jobs, import, reindex); duplicates.

Vectors are written with the model name beside them. Search only compares vectors of the model in
use, so a model change degrades to full-text matching until `supportswarm reindex` has re-embedded
the stale rows; nothing ever mixes two models' vectors.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from tortoise import connections

from embeddings import Embedder, Vectors
from supportswarm.errors import ConfigurationError
from supportswarm.forum.models import QuestionStatus
from supportswarm.jobs import JobName, JobQueue
from supportswarm.matching import density
from supportswarm.matching.search import (
    EMBEDDING_DIM,
    EXCERPT_CHARS,
    Hit,
    Mode,
    candidates,
    fuse,
    question_text,
    text_candidates,
    vector_candidates,
)

# Calibrated on BANKING77 by `python -m bench.matching` (figures and method in bench/README.md), on a
# split of train.csv, never on test.csv. An answer is offered when the best solution's share of the
# evidence is >= ANSWER_THRESHOLD and its question's cosine >= ANSWER_MIN_COSINE: the pair that answers
# the most questions while offers are >= 95% right and <= 5% of questions with no answer in the forum
# get one. RELATED_THRESHOLD: the cosine below which the best question is not even related (Youden's J
# between questions that have an answer in the forum and those that have none): an ask opens a swarm.
ANSWER_THRESHOLD = 0.571
ANSWER_MIN_COSINE = 0.78
RELATED_THRESHOLD = 0.836
DEFAULT_LIMIT = 5
MAX_LIMIT = 50
EMBED_BATCH = 256  # questions per EMBED_QUESTIONS job and per encode call of import/reindex

Progress = Callable[[int], None]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Similar:
    """The matcher's answer for one text: ranked hits, the evidence about the best, the decision."""

    hits: list[Hit]
    confidence: float  # the best solution's share of the evidence (0..1), see `fuse`
    similarity: float  # cosine of the best hit's question to the query (0 when it has no vector yet)
    decision: str  # "answer" | "ask"
    timings: dict[str, float] = field(default_factory=dict)  # seconds: embed, text (overlapped), vector

    @property
    def best(self) -> Hit | None:
        return self.hits[0] if self.hits else None


def similarity_of(hits: Sequence[Hit]) -> float:
    return max(0.0, hits[0].cosine or 0.0) if hits else 0.0


def decide(hits: Sequence[Hit], *, answer_threshold: float, min_cosine: float = ANSWER_MIN_COSINE) -> str:
    """Offers the best answer ("answer") only when its solution holds enough of the evidence AND its
    question is at least related; otherwise "ask".

    The share alone is relative: in a forum of one answered question, that one holds all the evidence
    for any query at all. The similarity gate keeps such answers from being offered to strangers.
    """
    best = hits[0] if hits else None
    if best is None or best.accepted_answer_id is None:
        return "ask"
    return "answer" if best.score >= answer_threshold and similarity_of(hits) >= min_cosine else "ask"


async def encode_one(text: str, *, embedder: Embedder) -> Vectors:
    """One query vector, computed off the event loop (the model holds the GIL only briefly)."""
    vectors: Vectors = await asyncio.to_thread(embedder.encode, [text])
    row: Vectors = vectors[0]
    return row


async def find_similar(
    text: str,
    *,
    limit: int = DEFAULT_LIMIT,
    embedder: Embedder,
    answer_threshold: float | None = None,
    exclude_id: int | None = None,
) -> Similar:
    """Visible, non-duplicate questions similar to `text`, one per solution, best first, and the decision.

    The full-text query runs on its own connection while the model embeds the text, so its cost hides
    behind the embedding: the floor of this call's latency (issue 3).
    """
    clock = time.perf_counter
    start = clock()
    text_task = asyncio.ensure_future(_timed(text_candidates(text, exclude_id=exclude_id)))
    try:
        vector = await encode_one(text, embedder=embedder)
    finally:
        embedded = clock()
        text_hits, text_s = await text_task
    found = await vector_candidates(vector, text_hits, model=embedder.name, exclude_id=exclude_id)
    hits = fuse(found, Mode.HYBRID, query=text)[:limit]
    threshold = ANSWER_THRESHOLD if answer_threshold is None else answer_threshold
    timings = {"embed": embedded - start, "text": text_s, "vector": clock() - max(embedded, start + text_s)}
    return Similar(hits, hits[0].score if hits else 0.0, similarity_of(hits),
                   decide(hits, answer_threshold=threshold), timings)


async def _timed(work: Awaitable[T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = await work
    return result, time.perf_counter() - start


def first_lines(text: str | None, lines: int = 3) -> str | None:
    """The first few non-blank lines of an answer excerpt, with an ellipsis when there is more."""
    if text is None:
        return None
    cut = len(text) > EXCERPT_CHARS
    kept = [line.strip() for line in text[:EXCERPT_CHARS].splitlines() if line.strip()]
    return "\n".join(kept[:lines]) + ("…" if cut or len(kept) > lines else "")


async def similar_json(text: str, *, limit: int, embedder: Embedder, answer_threshold: float | None
                       ) -> tuple[dict[str, Any], dict[str, float]]:
    """The `GET /api/v1/similar` reply (DESIGN.md), plus each accepted answer's first lines; and the
    timings of its parts (for the Server-Timing header)."""
    similar = await find_similar(text, limit=limit, embedder=embedder, answer_threshold=answer_threshold)
    return {
        "decision": similar.decision,
        "results": [
            {"id": h.id, "external_id": h.external_id, "title": h.title, "score": round(h.score, 4),
             "accepted_answer_id": h.accepted_answer_id,
             "answer_excerpt": first_lines(h.excerpt)}
            for h in similar.hits
        ],
    }, similar.timings


# --- duplicates ----------------------------------------------------------------------------------------


async def possible_duplicates(question_id: int, *, embedder: Embedder, limit: int = 5) -> list[dict[str, Any]]:
    """Other visible questions most like this one (by its stored vector when it has one of the current
    model, else by encoding its text), for staff to link as duplicates in one click."""
    rows = await _rows(
        "SELECT title, body, status, CASE WHEN embedding_model = $2 THEN embedding::real[] END AS vector "
        "FROM questions WHERE id = $1", [question_id, embedder.name],
    )
    if not rows or rows[0]["status"] == QuestionStatus.DUPLICATE:
        return []
    row = rows[0]
    text = question_text(row["title"], row["body"])
    vector = (np.asarray(row["vector"], dtype=np.float32) if row["vector"] is not None
              else await encode_one(text, embedder=embedder))
    hits = sorted(await candidates(vector, text, model=embedder.name, exclude_id=question_id),
                  key=lambda h: -(h.cosine or 0.0))  # every close question, not one per solution
    return [
        {"id": h.id, "title": h.title, "score": round(h.cosine or 0.0, 3), "accepted_answer_id": h.accepted_answer_id}
        for h in hits[:limit]
        if (h.cosine or 0.0) >= RELATED_THRESHOLD
    ]


# --- embedding -----------------------------------------------------------------------------------------


async def _rows(sql: str, params: list[Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await connections.get("default").execute_query_dict(sql, params)
    return rows


def check_dimension(embedder: Embedder) -> None:
    if embedder.dim != EMBEDDING_DIM:
        raise ConfigurationError(
            f"the embedding model {embedder.name} gives {embedder.dim}-dimensional vectors; "
            f"questions.embedding holds {EMBEDDING_DIM}"
        )


async def _load_texts(question_ids: Sequence[int]) -> list[dict[str, Any]]:
    return await _rows(
        "SELECT id, title, body, updated_at FROM questions WHERE id = ANY($1::int[]) ORDER BY id",
        [list(question_ids)],
    )


async def store_vectors(rows: Sequence[dict[str, Any]], vectors: Vectors, model: str) -> int:
    """Writes each row's vector unless the question was edited since its text was read: then the
    edit's own EMBED_QUESTION job (queued after the edit committed) writes the fresh vector.
    Returns the number of vectors offered (the skipped ones included)."""
    if not rows:
        return 0
    values: list[list[Any]] = [
        [row["id"], [float(x) for x in vector], model, row["updated_at"]]
        for row, vector in zip(rows, vectors, strict=True)
    ]
    await connections.get("default").execute_many(
        "UPDATE questions SET embedding = $2::real[]::vector, embedding_model = $3 "
        "WHERE id = $1 AND updated_at = $4",
        values,
    )
    return len(values)


async def embed_questions(question_ids: Sequence[int], *, embedder: Embedder, neighbours: bool = False) -> int:
    """Embeds these questions (title + body) with the current model and computes their density; with
    `neighbours`, their nearest questions' density too (density.py says when). The EMBED_QUESTION(S)
    jobs call it."""
    check_dimension(embedder)
    rows = await _load_texts(question_ids)
    if not rows:
        return 0
    texts = [question_text(r["title"], r["body"]) for r in rows]
    vectors = await asyncio.to_thread(embedder.encode, texts)
    stored = await store_vectors(rows, vectors, embedder.name)
    await density.update_density([r["id"] for r in rows], model=embedder.name, neighbours=neighbours)
    return stored


Store = Callable[[Vectors], Coroutine[Any, Any, int]]  # writes one batch's vectors; returns how many rows it wrote


class EmbedPipeline:
    """Encodes batches in a thread while the event loop reads the next batch and writes the last.

    The model is the bottleneck of import and reindex; this keeps it busy all the time (the writes
    and reads overlap with encoding instead of following it). At most `depth` batches wait.
    """

    def __init__(self, embedder: Embedder, *, progress: Progress | None = None, depth: int = 2) -> None:
        check_dimension(embedder)
        self.embedder = embedder
        self.progress = progress
        self.embedded = 0
        self._queue: asyncio.Queue[tuple[list[str], Store] | None] = asyncio.Queue(maxsize=depth)
        self._worker = asyncio.create_task(self._run())

    async def put(self, rows: list[dict[str, Any]]) -> None:
        """Queue stored questions (`id`, `title`, `body`, `updated_at`) to get their vectors written."""
        if rows:
            model = self.embedder.name

            async def store(vectors: Vectors) -> int:
                return await store_vectors(rows, vectors, model)

            await self.put_texts([question_text(r["title"], r["body"]) for r in rows], store)

    async def put_texts(self, texts: list[str], store: Store) -> None:
        """Queue texts to encode; `store` then gets their vectors (the importer inserts rows with them)."""
        if texts:
            await self._put((texts, store))

    async def close(self) -> int:
        """Waits for the queued batches; re-raises what stopped the encoder, if anything did."""
        if not self._worker.done():
            await self._put(None)
        await self._worker
        return self.embedded

    async def _put(self, item: tuple[list[str], Store] | None) -> None:
        # Never wait on a full queue whose consumer has died: that would hang the import forever.
        put = asyncio.ensure_future(self._queue.put(item))
        await asyncio.wait({put, self._worker}, return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            put.cancel()
            await self._worker  # raises the encoder's failure

    async def _run(self) -> None:
        writing: asyncio.Task[int] | None = None
        while (item := await self._queue.get()) is not None:
            texts, store = item
            vectors = await asyncio.to_thread(self.embedder.encode, texts, batch_size=64)
            if writing is not None:
                self._done(await writing)
            writing = asyncio.create_task(store(vectors))
        if writing is not None:
            self._done(await writing)

    def _done(self, count: int) -> None:
        self.embedded += count
        if self.progress is not None:
            self.progress(count)


async def count_stale(model: str, *, everything: bool = False) -> int:
    sql = "SELECT count(*) AS n FROM questions" + ("" if everything else _STALE)
    rows = await connections.get("default").execute_query_dict(sql, [] if everything else [model])
    return int(rows[0]["n"])


_STALE = " WHERE (embedding IS NULL OR embedding_model IS DISTINCT FROM $1)"


async def _stale_batch(model: str, after_id: int, size: int, everything: bool, *, texts: bool) -> list[dict[str, Any]]:
    cols = "id, title, body, updated_at" if texts else "id"
    where = (_STALE + " AND id > $2") if not everything else " WHERE id > $2 AND $1::text IS NOT NULL"
    return await _rows(f"SELECT {cols} FROM questions{where} ORDER BY id LIMIT $3", [model, after_id, size])


async def reindex(
    *,
    embedder: Embedder,
    jobs: JobQueue,
    inline: bool,
    everything: bool = False,
    batch_size: int = EMBED_BATCH,
    progress: Progress | None = None,
) -> int:
    """Re-embeds questions whose vector is missing or from another model (all of them with `everything`).

    `inline` (no REDIS_URL) encodes here; otherwise EMBED_QUESTIONS jobs carry id batches to the arq
    workers, so several workers embed in parallel. Returns the number of questions embedded or queued.
    """
    model, after, total = embedder.name, 0, 0
    pipeline = EmbedPipeline(embedder, progress=progress) if inline else None
    try:
        while rows := await _stale_batch(model, after, batch_size, everything, texts=inline):
            after, total = rows[-1]["id"], total + len(rows)
            if pipeline is not None:
                await pipeline.put(rows)
            else:
                await enqueue_embedding([r["id"] for r in rows], jobs=jobs)
                if progress is not None:
                    progress(len(rows))
    finally:
        if pipeline is not None:
            await pipeline.close()
    return total


async def enqueue_embedding(question_ids: Sequence[int], *, jobs: JobQueue) -> None:
    """One EMBED_QUESTIONS job per id batch.

    No job id on purpose: embedding twice is harmless (same text, same vector), while arq would refuse
    a re-run of a failed batch for as long as it keeps the failed result.
    """
    ids = list(question_ids)
    if ids:
        await jobs.enqueue(JobName.EMBED_QUESTIONS, question_ids=ids)


async def wait_embedded(*, model: str, max_idle: float, poll: float = 0.5, progress: Progress | None = None) -> int:
    """Waits (for the arq workers) until no question lacks `model`'s vector, or nothing changed for
    `max_idle` seconds. Returns how many are still stale; `progress` gets the number newly embedded."""
    loop = asyncio.get_running_loop()
    stale = await count_stale(model)
    changed = loop.time()
    while stale and loop.time() - changed < max_idle:
        await asyncio.sleep(poll)
        now_stale = await count_stale(model)
        if now_stale != stale:
            changed = loop.time()
            if progress is not None and now_stale < stale:
                progress(stale - now_stale)
        stale = now_stale
    return stale
