"""Leaving with everything, and coming back: the full export as JSON Lines, and its restore.

`supportswarm export FILE` writes one JSON object per line, each tagged by `"type"`:

    {"type": "supportswarm-export", "version": 1, "export_id": "...", "exported_at": "...", "sections": [...]}
    {"type": "user", "id": 1, "username": "alice", ...}          no password hashes, ever
    {"type": "question", "id": 7, ..., "tags": ["cards"]}        tags by name
    {"type": "answer" | "comment" | "vote" | "revision" | "suggestion", ...}
    {"type": "swarm", ..., "linked_question_ids": [...]}, {"type": "swarm_participant" | "swarm_message", ...}
    {"type": "event", ...}                                        the metrics log
    {"type": "end", "counts": {"user": 2, ...}}                   absent: the file was cut short

Every column of each table is written (except password hashes, vectors and generated columns), so
columns added by later migrations travel without changes here. One read-only REPEATABLE READ
transaction gives a consistent snapshot, read through server-side cursors in constant memory.

Restoring (`supportswarm import FILE` recognises the header line) keeps every id, so links such as
/questions/7 stay valid. It therefore needs an empty database, or the one an interrupted restore of
the same export left behind: rows already present are skipped (ON CONFLICT DO NOTHING), so running it
again finishes the job and adds nothing twice. Restored users get an unusable password hash and the
`imported` flag: they set a new password; an admin is created afterwards with `supportswarm createuser`.
Not exported: webhooks (their secrets stay behind), API tokens, and what is derived and rebuilt
(question vectors: re-embedded after a restore; expertise profiles; metric rollups; emergent clusters).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

import asyncpg

from supportswarm.db import ConnectionParams
from supportswarm.errors import Conflict, InvalidInput
from supportswarm.importer import ProgressBar, command_reindex
from supportswarm.resources import Resources

log = logging.getLogger(__name__)

FORMAT = "supportswarm-export"
VERSION = 1
BATCH = 500
# argon2 never produces this, so no password verifies against it (authenticate treats it as invalid).
UNUSABLE_PASSWORD = "!imported-no-password"
MAX_EXAMPLES = 20

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Section:
    """One table in the file. `extras` are computed columns (name, SQL over the row `t`); `late` are
    foreign keys (column, referenced table) written once every row exists, since they may point forward."""

    type: str
    table: str
    exclude: frozenset[str] = frozenset()
    extras: tuple[tuple[str, str], ...] = ()
    late: tuple[tuple[str, str], ...] = ()


_TAGS_SQL = ("(SELECT coalesce(array_agg(g.name ORDER BY g.name), '{}') FROM question_tags qt "
             "JOIN tags g ON g.id = qt.tag_id WHERE qt.question_id = t.id)")
_LINKS_SQL = "(SELECT coalesce(array_agg(l.question_id ORDER BY l.question_id), '{}') FROM swarm_links l " \
             "WHERE l.swarm_id = t.id)"

# In dependency order: each section refers only to sections above it (forward links are `late`).
SECTIONS = (
    Section("user", "users", exclude=frozenset({"password_hash"})),
    Section("question", "questions", exclude=frozenset({"embedding", "embedding_model", "search"}),
            extras=(("tags", _TAGS_SQL),),
            late=(("accepted_answer_id", "answers"), ("duplicate_of_id", "questions"))),
    Section("answer", "answers", late=(("from_swarm_id", "swarms"),)),
    Section("comment", "comments"),
    Section("vote", "votes"),
    Section("revision", "revisions"),
    Section("suggestion", "suggestions"),
    Section("swarm", "swarms", extras=(("linked_question_ids", _LINKS_SQL),)),
    Section("swarm_participant", "swarm_participants"),
    Section("swarm_message", "swarm_messages"),
    Section("event", "events", exclude=frozenset({"txid"})),
)
BY_TYPE = {s.type: s for s in SECTIONS}


async def _connect(params: ConnectionParams) -> asyncpg.Connection:
    conn = await asyncpg.connect(params.url())
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    return conn


async def _columns(conn: asyncpg.Connection, table: str) -> dict[str, str]:
    """Column name -> data type, in table order; generated columns are not data."""
    rows = await conn.fetch(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = $1 AND is_generated = 'NEVER' ORDER BY ordinal_position", table,
    )
    return {r["column_name"]: r["data_type"] for r in rows}


def _open(path: Path, mode: str, *, gz: bool | None = None) -> IO[str]:
    if path.suffix == ".gz" if gz is None else gz:
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return path.open(mode, encoding="utf-8")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"


# --- export -----------------------------------------------------------------------------------------


async def export_forum(params: ConnectionParams, path: Path, *, progress: Progress | None = None) -> dict[str, int]:
    """Writes the whole forum to `path` (gzip when it ends in .gz); returns the row count per type.

    The file appears under its name only when complete (written beside it, then renamed).
    """
    partial = path.with_name(path.name + ".partial")
    conn = await _connect(params)
    counts: dict[str, int] = {}
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            with _open(partial, "w", gz=path.suffix == ".gz") as out:
                out.write(_line({"type": FORMAT, "version": VERSION, "export_id": str(uuid.uuid4()),
                                 "exported_at": datetime.now(UTC).isoformat(),
                                 "sections": [s.type for s in SECTIONS]}))
                for section in SECTIONS:
                    counts[section.type] = await _export_section(conn, section, out, progress)
                out.write(_line({"type": "end", "counts": counts}))
        partial.replace(path)
    finally:
        await conn.close()
        partial.unlink(missing_ok=True)
    return counts


async def _export_section(conn: asyncpg.Connection, section: Section, out: IO[str],
                          progress: Progress | None) -> int:
    columns = [c for c in await _columns(conn, section.table) if c not in section.exclude]
    selected = [f't."{c}"' for c in columns] + [f'{sql} AS "{name}"' for name, sql in section.extras]
    sql = f"SELECT {', '.join(selected)} FROM {section.table} t ORDER BY t.id"
    count = 0
    async for row in conn.cursor(sql, prefetch=BATCH):
        out.write(_line({"type": section.type} | {k: _jsonable(v) for k, v in row.items()}))
        count += 1
        if progress is not None and count % BATCH == 0:
            progress(BATCH)
    if progress is not None and count % BATCH:
        progress(count % BATCH)
    return count


# --- restore ----------------------------------------------------------------------------------------


@dataclass
class RestoreReport:
    export_id: str = ""
    added: Counter[str] = field(default_factory=Counter)
    present: Counter[str] = field(default_factory=Counter)  # already there: a rerun after an interruption
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> rows
    examples: list[str] = field(default_factory=list)
    complete: bool = False  # the file ended with its "end" line

    def skip(self, reason: str, example: str) -> None:
        self.skipped[reason] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(example)

    def summary(self) -> str:
        parts = [f"{n} {t}s" for t, n in self.added.items() if n]
        lines = ["restored " + (", ".join(parts) or "nothing new")]
        if sum(self.present.values()):
            lines.append(f"already present (skipped): {sum(self.present.values())} rows")
        lines += [f"skipped {n}: {reason}" for reason, n in self.skipped.most_common()]
        lines += [f"  e.g. {e}" for e in self.examples]
        if not self.complete:
            lines.append("warning: the file has no end line; it may have been cut short")
        return "\n".join(lines)


def read_header(path: Path) -> dict[str, Any] | None:
    """The export header when `path` is a SupportSwarm export (its first line says so), else None."""
    try:
        with _open(path, "r") as f:
            first = f.readline(64 * 1024)
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
        return None
    try:
        header = json.loads(first)
    except json.JSONDecodeError:
        return None
    return header if isinstance(header, dict) and header.get("type") == FORMAT else None


def is_export_file(path: Path) -> bool:
    return read_header(path) is not None


async def restore_export(params: ConnectionParams, path: Path, *, progress: Progress | None = None) -> RestoreReport:
    """Loads an export file into this (empty) database, keeping ids. Idempotent and resumable."""
    header = read_header(path)
    if header is None:
        raise InvalidInput(f"{path} is not a SupportSwarm export (its first line is not the export header)",
                           field="file")
    if header.get("version") != VERSION:
        raise InvalidInput(f"export version {header.get('version')!r} is not supported (this is {VERSION})",
                           field="file")
    report = RestoreReport(export_id=str(header.get("export_id") or ""))
    conn = await _connect(params)
    try:
        await _claim_database(conn, f"export:{report.export_id}")
        restorer = _Restorer(conn, report)
        await restorer.prepare()
        with _open(path, "r") as lines:
            await restorer.load(_records(lines, report), progress)
        await restorer.finish()
    finally:
        await conn.close()
    return report


async def _claim_database(conn: asyncpg.Connection, key: str) -> None:
    async with conn.transaction():
        await conn.execute("LOCK TABLE import_runs IN EXCLUSIVE MODE")
        resumed = await conn.fetchval("SELECT 1 FROM import_runs WHERE key = $1", key)
        used = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users) OR EXISTS (SELECT 1 FROM questions)")
        if used and not resumed:
            raise Conflict("restoring an export keeps its ids, so it needs an empty database (or the one an "
                           "interrupted restore of this same file left); this one already has users or questions")
        await conn.execute("INSERT INTO import_runs (key) VALUES ($1) ON CONFLICT (key) DO NOTHING", key)


def _records(lines: IO[str], report: RestoreReport) -> Iterator[dict[str, Any]]:
    next(lines, None)  # the header
    for number, line in enumerate(lines, start=2):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            report.skip("invalid JSON", f"line {number}: {exc.msg}")
            continue
        kind = record.get("type") if isinstance(record, dict) else None
        if kind == "end":
            report.complete = True
        elif kind in BY_TYPE:
            yield record
        else:
            report.skip("unknown record type", f"line {number}: type {str(kind)[:40]!r}")


class _Restorer:
    """Batches records of one type into multi-row INSERTs; forward links wait in a temporary table."""

    def __init__(self, conn: asyncpg.Connection, report: RestoreReport) -> None:
        self.conn = conn
        self.report = report
        self.types: dict[str, dict[str, str]] = {}

    async def prepare(self) -> None:
        for section in SECTIONS:
            self.types[section.type] = await _columns(self.conn, section.table)
        await self.conn.execute("CREATE TEMPORARY TABLE IF NOT EXISTS restore_late "
                                "(tbl text, col text, id bigint, val bigint, PRIMARY KEY (tbl, col, id))")

    async def load(self, records: Iterator[dict[str, Any]], progress: Progress | None) -> None:
        batch: list[dict[str, Any]] = []
        for record in records:
            if batch and (record["type"] != batch[0]["type"] or len(batch) >= BATCH):
                await self._flush(batch, progress)
                batch = []
            batch.append(record)
        if batch:
            await self._flush(batch, progress)

    async def _flush(self, batch: list[dict[str, Any]], progress: Progress | None) -> None:
        section = BY_TYPE[batch[0]["type"]]
        rows = [r for r in (self._row(section, rec) for rec in batch) if r is not None]
        try:
            async with self.conn.transaction():
                added, rejected = await self._insert(section, rows), 0
        except (asyncpg.PostgresError, asyncpg.DataError):
            added, rejected = await self._row_by_row(section, rows)
        self.report.added.update({section.type: added})
        self.report.present.update({section.type: len(rows) - added - rejected})
        self.report.added += Counter()  # drops zero counts: the report lists what happened
        self.report.present += Counter()
        if progress is not None:
            progress(len(batch))

    async def _row_by_row(self, section: Section, rows: list[dict[str, Any]]) -> tuple[int, int]:
        """One bad row must not cost its batch: each row alone, skipping (and naming) the bad ones."""
        added = rejected = 0
        for row in rows:
            try:
                async with self.conn.transaction():
                    added += await self._insert(section, [row])
            except (asyncpg.PostgresError, asyncpg.DataError) as exc:
                rejected += 1
                self.report.skip(f"{section.type} rejected by the database",
                                 f"{section.type} {row.get('id')}: {str(exc).splitlines()[0][:200]}")
        return added, rejected

    def _row(self, section: Section, record: dict[str, Any]) -> dict[str, Any] | None:
        types = self.types[section.type]
        try:
            row = {k: _to_db(v, types[k]) for k, v in record.items() if k in types}
        except (TypeError, ValueError) as exc:
            self.report.skip(f"{section.type} has an invalid value", f"{section.type} {record.get('id')}: {exc}")
            return None
        if not isinstance(row.get("id"), int):
            self.report.skip(f"{section.type} without an integer id", f"{section.type}: {str(record)[:120]}")
            return None
        for name, _sql in section.extras:
            row[name] = record.get(name) or []
        if section.type == "user":
            row.update(password_hash=UNUSABLE_PASSWORD, imported=True)
        return row

    async def _insert(self, section: Section, rows: list[dict[str, Any]]) -> int:
        if not rows:
            return 0
        late = {c for c, _ in section.late}
        extras = {name for name, _ in section.extras}
        columns = [c for c in rows[0] if c not in late and c not in extras]
        values, params = [], []
        for row in rows:
            marks = []
            for column in columns:
                params.append(row.get(column))
                marks.append(f"${len(params)}")
            values.append(f"({', '.join(marks)})")
        quoted = ", ".join(f'"{c}"' for c in columns)
        inserted = await self.conn.fetch(
            f"INSERT INTO {section.table} ({quoted}) VALUES {', '.join(values)} ON CONFLICT DO NOTHING RETURNING id",
            *params,
        )
        await self._links(section, rows)
        return len(inserted)

    async def _links(self, section: Section, rows: list[dict[str, Any]]) -> None:
        """Tags, swarm links and forward foreign keys of these rows (idempotent, so also for rows present)."""
        if section.type == "question":
            pairs = [(r["id"], str(tag)) for r in rows for tag in r["tags"]]
            await self.conn.execute("INSERT INTO tags (name) SELECT DISTINCT unnest($1::text[]) ON CONFLICT DO NOTHING",
                                    [t for _, t in pairs])
            await self.conn.execute(
                "INSERT INTO question_tags (question_id, tag_id) SELECT x.q, g.id FROM unnest($1::int[], $2::text[]) "
                "AS x(q, name) JOIN tags g ON g.name = x.name ON CONFLICT DO NOTHING",
                [q for q, _ in pairs], [t for _, t in pairs],
            )
        if section.type == "swarm":
            pairs = [(int(q), r["id"]) for r in rows for q in r["linked_question_ids"]]
            await self.conn.execute(
                "INSERT INTO swarm_links (question_id, swarm_id) SELECT * FROM unnest($1::int[], $2::int[]) "
                "ON CONFLICT DO NOTHING", [q for q, _ in pairs], [s for _, s in pairs],
            )
        for column, _target in section.late:
            links = [(r["id"], r[column]) for r in rows if r.get(column) is not None]
            await self.conn.executemany(
                "INSERT INTO restore_late (tbl, col, id, val) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                [(section.table, column, i, v) for i, v in links],
            )

    async def finish(self) -> None:
        for section in SECTIONS:
            for column, target in section.late:
                # A link to a row that was skipped is dropped rather than failing the whole restore.
                await self.conn.execute(
                    f'UPDATE {section.table} t SET "{column}" = l.val FROM restore_late l '
                    f"WHERE l.tbl = $1 AND l.col = $2 AND t.id = l.id AND t.\"{column}\" IS DISTINCT FROM l.val "
                    f"AND EXISTS (SELECT 1 FROM {target} r WHERE r.id = l.val)",
                    section.table, column,
                )
            await self.conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{section.table}', 'id'), "
                f"coalesce((SELECT max(id) FROM {section.table}), 0) + 1, false)"
            )
        await self.conn.execute("DROP TABLE IF EXISTS restore_late")
        await self.conn.execute(
            "UPDATE import_runs SET finished_at = now(), counts = $2 WHERE key = $1",
            f"export:{self.report.export_id}", dict(self.report.added),
        )


def _to_db(value: Any, data_type: str) -> Any:
    """A JSON value as asyncpg wants it for a column of `data_type`."""
    if value is None:
        return None
    if data_type == "timestamp with time zone":
        if not isinstance(value, str):
            raise TypeError(f"expected an ISO time, got {type(value).__name__}")
        return datetime.fromisoformat(value)
    if data_type in {"integer", "bigint", "smallint"}:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"expected an integer, got {value!r:.40}")
        return value
    if data_type == "double precision":
        return float(value)
    return value


async def command_restore(res: Resources, path: Path, *, wait: bool = True) -> int:
    """`supportswarm import EXPORT`: restores with a progress bar, prints the report, then embeds the
    questions (the export carries no vectors) as `supportswarm reindex` does."""
    bar = ProgressBar(f"restore {path.name}", await asyncio.to_thread(_count_lines, path))
    report = await restore_export(res.db, path, progress=bar)
    bar.close()
    print(report.summary())
    await command_reindex(res, wait=wait)
    return 0 if report.added or report.present else 1


def _count_lines(path: Path) -> int | None:
    if path.suffix == ".gz":
        return None  # would mean decompressing twice; the bar shows counts and rate without a total
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
