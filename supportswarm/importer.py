"""`supportswarm import FILE`: bring existing Q&A in, streaming, idempotent, embedded in batches.

A *reader* turns a file into a stream of `Record`s (or `Skipped` notes); `import_records` stores them
in batches and has them embedded. Readers are picked by file name in `READERS`, so a second format
(the Stack Exchange `Posts.xml` reader) plugs in with one entry. JSON Lines (DESIGN.md), one object per line:

    {"external_id", "title", "body", "tags": [...], "answer": optional accepted answer text,
     "created_at": optional ISO time}

Idempotent and resumable: rows are keyed by `external_id` (a second run adds nothing), and every batch
also picks up already-stored rows still lacking a vector, so an interrupted import finishes its
embedding when run again. Imported history is not written to the event log: metrics measure what
happens in SupportSwarm, and years-old questions "resolved" at import time would distort them.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

from tortoise import connections
from tortoise.transactions import in_transaction

from embeddings import Embedder, Vectors
from supportswarm.forum.services import BODY_MAX, TITLE_MAX
from supportswarm.jobs import JobQueue
from supportswarm.matching import density, search
from supportswarm.matching import services as matching
from supportswarm.matching.search import question_text
from supportswarm.resources import Resources
from supportswarm.validation import MAX_TAGS, TAG_RE

BATCH = matching.EMBED_BATCH
EXTERNAL_ID_MAX = 128
SKIP_EXAMPLES = 10


@dataclass(frozen=True, kw_only=True)
class AnswerRecord:
    body: str
    is_accepted: bool = False
    created_at: datetime | None = None  # None: the question's time
    score: int = 0
    author_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class Record:
    """One question to import, with its answers (at most one accepted)."""

    external_id: str
    title: str
    body: str
    tags: list[str] = field(default_factory=list)
    created_at: datetime | None = None  # None: now
    answers: list[AnswerRecord] = field(default_factory=list)
    score: int = 0
    author_id: int | None = None


@dataclass(frozen=True)
class Skipped:
    where: str  # e.g. "line 12"
    reason: str


Reader = Callable[[Path], Iterator[Record | Skipped]]


@dataclass
class SkipTally:
    """Records skipped by reason, with the first SKIP_EXAMPLES as examples (every import report has one)."""

    skipped: Counter[str] = field(default_factory=Counter)
    examples: list[Skipped] = field(default_factory=list)

    def skip(self, note: Skipped) -> None:
        self.skipped[note.reason] += 1
        if len(self.examples) < SKIP_EXAMPLES:
            self.examples.append(note)


@dataclass
class ImportReport(SkipTally):
    read: int = 0
    imported: int = 0
    existing: int = 0
    embedded: int = 0  # embedded here (inline) or queued for the workers

    def summary(self) -> str:
        lines = [f"read {self.read} records: {self.imported} imported, {self.existing} already present, "
                 f"{sum(self.skipped.values())} skipped; {self.embedded} embedded"]
        lines += [f"  skipped {n}: {reason}" for reason, n in self.skipped.most_common()]
        lines += [f"  e.g. {s.where}: {s.reason}" for s in self.examples]
        return "\n".join(lines)


# --- JSON Lines --------------------------------------------------------------------------------------------


class _Bad(ValueError):
    pass


def read_jsonl(path: Path) -> Iterator[Record | Skipped]:
    """Streams a JSON Lines file (constant memory). Blank lines are ignored; bad lines are `Skipped`."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield parse_record(json.loads(raw.decode("utf-8")))
            except UnicodeDecodeError:
                yield Skipped(f"line {number}", "not UTF-8")
            except json.JSONDecodeError as exc:
                yield Skipped(f"line {number}", f"not JSON ({exc.msg})")
            except _Bad as exc:
                yield Skipped(f"line {number}", str(exc))


def parse_record(obj: Any) -> Record:
    if not isinstance(obj, dict):
        raise _Bad("not a JSON object")
    external_id = obj.get("external_id")
    if isinstance(external_id, int) and not isinstance(external_id, bool):
        external_id = str(external_id)
    if not isinstance(external_id, str) or not 0 < len(external_id.strip()) <= EXTERNAL_ID_MAX:
        raise _Bad(f"external_id must be a string of 1 to {EXTERNAL_ID_MAX} characters")
    title = " ".join(_text(obj.get("title"), "title").split())
    if not 0 < len(title) <= TITLE_MAX:
        raise _Bad(f"title must be 1 to {TITLE_MAX} characters")
    body = _text(obj.get("body") or "", "body").strip()
    if len(body) > BODY_MAX:
        raise _Bad(f"body longer than {BODY_MAX} characters")
    answer = _text(obj.get("answer") or "", "answer").strip()
    if len(answer) > BODY_MAX:
        raise _Bad(f"answer longer than {BODY_MAX} characters")
    answers = [AnswerRecord(body=answer, is_accepted=True)] if answer else []
    return Record(external_id=external_id.strip(), title=title, body=body, tags=clean_tags(obj.get("tags")),
                  created_at=_time(obj.get("created_at")), answers=answers)


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise _Bad(f"{name} must be a string")
    if "\x00" in value:
        raise _Bad(f"{name} contains NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Bad(f"{name} is not valid Unicode (lone surrogate)") from None
    return value


def _time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _Bad("created_at must be an ISO 8601 string")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise _Bad(f"created_at {value[:40]!r} is not an ISO 8601 time") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


_TAG_JUNK = re.compile(r"[^a-z0-9+#.-]+")


def clean_tags(raw: Any) -> list[str]:
    """Lenient: other systems allow tags we do not, so spaces become '-' and what still does not fit
    the forum's tag rule is dropped instead of losing the whole question."""
    if isinstance(raw, str):
        raw = re.split(r"[\s,]+", raw)
    if not isinstance(raw, list):
        return []
    tags: list[str] = []
    for item in raw:
        if not isinstance(item, str):
            continue
        tag = _TAG_JUNK.sub("-", item.strip().lower().replace(" ", "-")).strip("-")
        if TAG_RE.match(tag) and tag not in tags:
            tags.append(tag)
    return tags[:MAX_TAGS]


READERS: dict[str, Reader] = {".jsonl": read_jsonl, ".json": read_jsonl, ".ndjson": read_jsonl}


def reader_for(path: Path) -> Reader:
    """By file extension; anything unknown is read as JSON Lines."""
    return READERS.get(path.suffix.lower(), read_jsonl)


# --- storing -----------------------------------------------------------------------------------------------

# $7: each row's vector as pgvector text ('[0.1,...]'), or NULL when the workers will embed it; $8 model.
_INSERT_QUESTIONS = """
INSERT INTO questions (external_id, title, body, status, score, author_id, answer_count,
                       created_at, updated_at, last_activity_at, embedding, embedding_model)
SELECT x.external_id, x.title, x.body, 'open', x.score, x.author_id, 0, x.at, x.at, x.at,
       x.vector::vector, CASE WHEN x.vector IS NOT NULL THEN $8 END
FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::timestamptz[], $7::text[])
     AS x(external_id, title, body, score, author_id, at, vector)
ON CONFLICT (external_id) DO NOTHING
RETURNING id, external_id
"""
_EXISTING = "SELECT external_id FROM questions WHERE external_id = ANY($1::text[])"
_INSERT_REVISIONS = """
INSERT INTO revisions (question_id, answer_id, number, title, body, tags, created_at)
SELECT x.qid, x.aid, 1, x.title, x.body, x.tags, x.at
FROM unnest($1::int[], $2::int[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
     AS x(qid, aid, title, body, tags, at)
"""
_INSERT_TAGS = "INSERT INTO tags (name) SELECT DISTINCT unnest($1::text[]) ON CONFLICT (name) DO NOTHING"
_LINK_TAGS = """
INSERT INTO question_tags (question_id, tag_id)
SELECT x.qid, t.id FROM unnest($1::int[], $2::text[]) AS x(qid, name) JOIN tags t ON t.name = x.name
ON CONFLICT DO NOTHING
"""
_INSERT_ANSWERS = """
INSERT INTO answers (question_id, author_id, body, score, is_accepted, created_at, updated_at)
SELECT x.qid, x.author_id, x.body, x.score, x.accepted, x.at, x.at
FROM unnest($1::int[], $2::int[], $3::text[], $4::int[], $5::bool[], $6::timestamptz[])
     AS x(qid, author_id, body, score, accepted, at)
RETURNING id, question_id, is_accepted, body, created_at
"""
_COUNT_ANSWERS = """
UPDATE questions q SET answer_count = x.n, accepted_answer_id = x.accepted,
       status = CASE WHEN x.accepted IS NULL THEN q.status ELSE 'resolved' END
FROM unnest($1::int[], $2::int[], $3::int[]) AS x(qid, n, accepted)
WHERE q.id = x.qid
"""
_NEEDS_VECTOR = """
SELECT id, title, body, updated_at FROM questions
WHERE external_id = ANY($1::text[]) AND (embedding IS NULL OR embedding_model IS DISTINCT FROM $2)
ORDER BY id
"""


def vector_literal(vector: Vectors) -> str:
    return "[" + ",".join(map(repr, vector.tolist())) + "]"


async def store_batch(records: list[Record], vectors: Vectors | None = None, model: str | None = None
                      ) -> dict[str, int]:
    """Inserts the questions not yet present (by external_id) with tags, revisions and answers, in one
    transaction; with their `vectors` when given (one write per row: no UPDATE after the INSERT).
    Returns external_id -> id of the rows inserted now."""
    now = datetime.now(UTC)
    at = [r.created_at or now for r in records]
    literals = [None] * len(records) if vectors is None else [vector_literal(v) for v in vectors]
    async with in_transaction() as conn:
        rows = await conn.execute_query_dict(_INSERT_QUESTIONS, [
            [r.external_id for r in records], [r.title for r in records], [r.body for r in records],
            [r.score for r in records], [r.author_id for r in records], at, literals, model,
        ])
        ids = {row["external_id"]: row["id"] for row in rows}
        fresh = [(r, ids[r.external_id], t) for r, t in zip(records, at, strict=True) if r.external_id in ids]
        if fresh:
            await conn.execute_query(_INSERT_REVISIONS, [
                [qid for _, qid, _ in fresh], [None] * len(fresh), [r.title for r, _, _ in fresh],
                [r.body for r, _, _ in fresh], [" ".join(r.tags) for r, _, _ in fresh], [t for _, _, t in fresh],
            ])
            await _store_tags(conn, fresh)
            await _store_answers(conn, fresh)
    return ids


async def _store_tags(conn: Any, fresh: list[tuple[Record, int, datetime]]) -> None:
    pairs = [(qid, tag) for r, qid, _ in fresh for tag in r.tags]
    if pairs:
        await conn.execute_query(_INSERT_TAGS, [sorted({tag for _, tag in pairs})])
        await conn.execute_query(_LINK_TAGS, [[qid for qid, _ in pairs], [tag for _, tag in pairs]])


async def _store_answers(conn: Any, fresh: list[tuple[Record, int, datetime]]) -> None:
    items = [(qid, a, a.created_at or t) for r, qid, t in fresh for a in r.answers]
    if not items:
        return
    rows = await conn.execute_query_dict(_INSERT_ANSWERS, [
        [qid for qid, _, _ in items], [a.author_id for _, a, _ in items], [a.body for _, a, _ in items],
        [a.score for _, a, _ in items], [a.is_accepted for _, a, _ in items], [at for _, _, at in items],
    ])
    await conn.execute_query(_INSERT_REVISIONS, [
        [None] * len(rows), [r["id"] for r in rows], [None] * len(rows), [r["body"] for r in rows],
        [""] * len(rows), [r["created_at"] for r in rows],
    ])
    counts: Counter[int] = Counter(r["question_id"] for r in rows)
    accepted = {r["question_id"]: r["id"] for r in rows if r["is_accepted"]}
    await conn.execute_query(_COUNT_ANSWERS, [list(counts), list(counts.values()), [accepted.get(q) for q in counts]])


async def _needing_vectors(external_ids: list[str], model: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await connections.get("default").execute_query_dict(_NEEDS_VECTOR,
                                                                                      [external_ids, model])
    return rows


def _batches(source: Iterable[Record | Skipped], size: int) -> Iterator[list[Record | Skipped]]:
    iterator = iter(source)
    while batch := list(islice(iterator, size)):
        yield batch


async def import_records(
    source: Iterable[Record | Skipped],
    *,
    embedder: Embedder,
    jobs: JobQueue,
    inline: bool,
    batch_size: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Stores the records batch by batch and has them embedded.

    `inline` (no REDIS_URL): each new batch is encoded first, while the next one is read, and then
    inserted with its vectors. Otherwise the rows are inserted at once and EMBED_QUESTIONS jobs carry
    the embedding to the arq workers. Either way, rows an earlier run left without a vector are
    embedded too. `progress` is told how many records each batch held.
    """
    report = ImportReport()
    pipeline = matching.EmbedPipeline(embedder) if inline else None
    try:
        for batch in _batches(source, batch_size):
            await _import_batch(batch, report, pipeline, jobs=jobs, model=embedder.name)
            if progress is not None:
                progress(len(batch))
    finally:
        if pipeline is not None:
            await pipeline.close()
            report.embedded = pipeline.embedded
    return report


async def _import_batch(batch: list[Record | Skipped], report: ImportReport, pipeline: matching.EmbedPipeline | None,
                        *, jobs: JobQueue, model: str) -> None:
    records: dict[str, Record] = {}
    for item in batch:
        report.read += 1
        if isinstance(item, Skipped):
            report.skip(item)
        elif item.external_id in records:
            report.skip(Skipped(f"external_id {item.external_id[:40]}", "repeated in the file (first kept)"))
        else:
            records[item.external_id] = item
    if not records:
        return
    if pipeline is not None:
        await _encode_then_insert(list(records.values()), report, pipeline)
    else:
        inserted = await store_batch(list(records.values()))
        report.imported += len(inserted)
        report.existing += len(records) - len(inserted)
    rows = await _needing_vectors(list(records), model)  # left without a vector by an interrupted run
    if pipeline is not None:
        await pipeline.put(rows)
    else:
        await matching.enqueue_embedding([r["id"] for r in rows], jobs=jobs)
        report.embedded += len(rows)


async def _encode_then_insert(records: list[Record], report: ImportReport, pipeline: matching.EmbedPipeline) -> None:
    found = await connections.get("default").execute_query_dict(_EXISTING, [[r.external_id for r in records]])
    existing = {row["external_id"] for row in found}
    fresh = [r for r in records if r.external_id not in existing]
    report.existing += len(existing)
    model = pipeline.embedder.name

    async def insert(vectors: Vectors) -> int:
        inserted = await store_batch(fresh, vectors, model)
        report.imported += len(inserted)
        report.existing += len(fresh) - len(inserted)  # inserted meanwhile by someone else
        return len(inserted)

    await pipeline.put_texts([question_text(r.title, r.body) for r in fresh], insert)


async def import_file(path: Path, *, embedder: Embedder, jobs: JobQueue, inline: bool,
                      batch_size: int = BATCH, progress: Callable[[int], None] | None = None) -> ImportReport:
    return await import_records(reader_for(path)(path), embedder=embedder, jobs=jobs, inline=inline,
                                batch_size=batch_size, progress=progress)


def count_lines(path: Path) -> int | None:
    """The number of lines of a JSON Lines file (a fast byte scan), for the progress bar's total."""
    if reader_for(path) is not read_jsonl:
        return None
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


# --- progress ------------------------------------------------------------------------------------------------


class ProgressBar:
    """A one-line progress bar on stderr: count, rate, ETA. Redrawn at most 5 times a second on a
    terminal; elsewhere (logs, CI) one plain line every 10 seconds."""

    def __init__(self, label: str, total: int | None = None, stream: TextIO | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = self._last = time.monotonic()

    def __call__(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last >= (0.2 if self.tty else 10.0):
            self._last = now
            self._draw(final=False)

    def close(self) -> None:
        self._draw(final=True)

    def _draw(self, *, final: bool) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        line = f"{self.label}: {self.done}"
        if self.total:
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(share * 30)
            eta = (self.total - self.done) / rate if rate > 0 and not final else 0
            line = f"{self.label} [{bar:<30}] {self.done}/{self.total} {share:4.0%}"
            line += f" eta {eta:.0f}s" if eta else ""
        line += f" {rate:.0f}/s {elapsed:.0f}s"
        end = "\n" if final or not self.tty else ""
        self.stream.write(("\r" if self.tty else "") + line + end)
        self.stream.flush()


# --- the commands ----------------------------------------------------------------------------------------------

WORKER_IDLE_S = 120.0  # with REDIS_URL: stop waiting for the workers after this long without progress


async def command_import(res: Resources, path: Path, *, batch_size: int = BATCH, wait: bool = True) -> int:
    """`supportswarm import FILE`: prints a progress bar and the report; exit status 0, or 1 if nothing
    could be read. With REDIS_URL the arq workers embed; `wait` follows them with a second bar."""
    if not path.exists():  # noqa: ASYNC240 - one stat before a long import
        print(f"error: no file {path}", file=sys.stderr)
        return 2
    total = await asyncio.to_thread(count_lines, path)
    inline = not res.settings.redis_url
    bar = ProgressBar(f"import {path.name}", total)
    report = await import_file(path, embedder=res.embedder, jobs=res.jobs, inline=inline, batch_size=batch_size,
                               progress=bar)
    bar.close()
    print(report.summary())
    if report.imported:
        await search.refresh_search_terms()  # the new words' frequencies, for full-text ranking
    if not inline and wait and report.embedded:
        await _follow_workers(res)
    if report.embedded and (inline or wait):
        await _refresh_density(res)
    return 1 if report.read and not (report.imported or report.existing) else 0


async def command_reindex(res: Resources, *, everything: bool = True, wait: bool = True) -> int:
    """`supportswarm reindex`: re-embeds every question (`--stale`: only those without a vector of the
    current model, e.g. after SUPPORTSWARM_MODEL_PATH changed or an interrupted import)."""
    model = res.embedder.name
    inline = not res.settings.redis_url
    bar = ProgressBar(f"reindex ({model})", await matching.count_stale(model, everything=everything))
    total = await matching.reindex(embedder=res.embedder, jobs=res.jobs, inline=inline, everything=everything,
                                   progress=bar)
    bar.close()
    print(f"{total} questions {'re-embedded' if inline else 'queued for the workers'} with {model}")
    if not inline and wait and total:
        await _follow_workers(res)
    if total and (inline or wait):
        await _refresh_density(res)
    return 0


async def _refresh_density(res: Resources) -> None:
    """A bulk change moves every question's neighbourhood: all densities are recomputed, with a bar
    (without waiting for the workers, the daily REFRESH_DENSITY job does it; matching/density.py)."""
    model = res.embedder.name
    bar = ProgressBar("density", await density.count_embedded(model))
    await density.refresh_density(model=model, progress=bar)
    bar.close()


async def _follow_workers(res: Resources) -> None:
    model = res.embedder.name
    bar = ProgressBar("workers embedding", await matching.count_stale(model))
    stale = await matching.wait_embedded(model=model, max_idle=WORKER_IDLE_S, progress=bar)
    bar.close()
    if stale:
        print(f"{stale} questions still wait for a vector: is a `supportswarm worker` running?", file=sys.stderr)
