"""Importing a Stack Exchange data dump: `Posts.xml`, with `Users.xml` and `Comments.xml` beside it.

Memory stays constant on multi-GB dumps: rows are streamed with `iterparse` and cleared as they are
read, and nothing is kept across rows. Answers may come before their question in a dump, so the
posts file is read three times (reading is fast next to embedding):

1. questions (PostTypeId 1) go through `importer.import_records`: batched inserts, batched embedding;
2. answers (PostTypeId 2) are attached to their question, found by its external id;
3. each question's accepted answer, author and last activity are linked, now that everything exists.

`Users.xml` comes first (so posts get their authors) and `Comments.xml` last. Every row is keyed by
an external id, `se:<site>:<PostId>` for questions and answers, `se:<site>:user:<Id>` and
`se:<site>:comment:<Id>`, so running the import again adds nothing, and an interrupted one is finished
by running it again. Other post types (tag wikis, nominations, ...) are skipped and counted.

Bodies are HTML in the dump. They are converted to Markdown (`html_markdown.py`), because the forum
stores Markdown and renders it with markdown-it with raw HTML disabled, then cleans the result with
nh3: no HTML from a dump ever reaches a page as HTML. Imported users get an unusable password
and the `imported` flag; their username is derived from the display name plus the Stack Exchange id.
Like the JSON Lines import, a dump writes nothing to the event log: metrics measure what happens here.
"""

from __future__ import annotations

import hashlib
import re
import sys
import unicodedata
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from tortoise.transactions import in_transaction

from embeddings import Embedder
from supportswarm.errors import InvalidInput
from supportswarm.export import UNUSABLE_PASSWORD
from supportswarm.forum.services import TITLE_MAX
from supportswarm.html_markdown import html_to_markdown
from supportswarm.importer import (
    BATCH,
    ImportReport,
    ProgressBar,
    Record,
    Skipped,
    SkipTally,
    clean_tags,
    import_records,
)
from supportswarm.importer import _follow_workers as follow_workers
from supportswarm.jobs import JobQueue
from supportswarm.resources import Resources

T = TypeVar("T")
ROW_BATCH = 500
POST_TYPES = {3: "orphaned tag wiki", 4: "tag wiki excerpt", 5: "tag wiki", 6: "moderator nomination",
              7: "wiki placeholder", 8: "privilege wiki", 9: "knowledge article", 10: "collective discussion",
              11: "collective article", 12: "announcement", 13: "discussion", 14: "article", 15: "collective"}

ProgressFactory = Callable[[str, int | None], ProgressBar | None]


# --- reading the dump --------------------------------------------------------------------------------------


def rows(path: Path) -> Iterator[dict[str, str]]:
    """The attributes of every <row> of a dump file, in constant memory: each row is dropped once read."""
    root: ET.Element | None = None
    try:
        for event, elem in ET.iterparse(path, events=("start", "end")):
            if root is None and event == "start":
                root = elem
            elif event == "end" and elem.tag == "row":
                yield dict(elem.attrib)
                if root is not None:
                    root.clear()
    except ET.ParseError as exc:
        # A cut-off download: what was read is stored; the import resumes once the file is whole.
        raise InvalidInput(f"{path.name} is not well-formed XML ({exc}); rows before that were imported",
                           field="file") from None


def site_name(posts: Path) -> str:
    """The dump's folder name (e.g. `cooking.stackexchange.com`), the site part of every external id."""
    name = re.sub(r"[^a-z0-9.-]+", "-", posts.resolve().parent.name.lower()).strip("-.")
    return name[:64] or "site"


def _ext(site: str, *parts: object) -> str:
    return ":".join(["se", site, *(str(p) for p in parts)])


def _time(raw: str | None) -> datetime | None:
    if not raw:
        return None
    at = datetime.fromisoformat(raw)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _int(raw: str | None, default: int = 0) -> int:
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        return default


def parse_tags(raw: str | None) -> list[str]:
    """Both dump formats: `<python><pandas>` (older) and `|python|pandas|` (newer)."""
    if not raw:
        return []
    names = re.findall(r"<([^<>]+)>", raw) if raw.startswith("<") else [t for t in raw.split("|") if t]
    # Tags here start with a letter or digit; Stack Exchange's `.net` family becomes `dotnet`.
    return clean_tags(["dot" + n[1:] if n.startswith(".") else n for n in names])


def _base_url(site: str) -> str | None:
    return f"https://{site}" if "." in site else None


def read_questions(posts: Path, site: str) -> Iterator[Record | Skipped]:
    """Pass 1: every question as a `Record` (no answers yet), and a `Skipped` for each post of another type."""
    base = _base_url(site)
    for row in rows(posts):
        kind, post_id = _int(row.get("PostTypeId"), -1), row.get("Id", "?")
        if kind == 2:
            continue
        if kind != 1:
            name = POST_TYPES.get(kind, "unknown")
            yield Skipped(f"post {post_id}", f"post type {kind} ({name}): not a question or answer")
            continue
        title = " ".join((row.get("Title") or "").split())
        if not title or len(title) > TITLE_MAX or not post_id.isdigit():
            yield Skipped(f"post {post_id}", f"question without a usable title or id (1 to {TITLE_MAX} characters)")
            continue
        try:
            created = _time(row.get("CreationDate"))
        except ValueError:
            yield Skipped(f"post {post_id}", "CreationDate is not an ISO time")
            continue
        yield Record(external_id=_ext(site, post_id), title=title,
                     body=html_to_markdown(row.get("Body") or "", base_url=base), tags=parse_tags(row.get("Tags")),
                     created_at=created, score=_int(row.get("Score")))


@dataclass(frozen=True)
class AnswerRow:
    external_id: str
    question_external_id: str
    author_external_id: str | None
    body: str
    score: int
    created_at: datetime
    is_wiki: bool


def read_answers(posts: Path, site: str) -> Iterator[AnswerRow | Skipped]:
    """Pass 2: every answer, keyed to its question by the question's external id."""
    base = _base_url(site)
    for row in rows(posts):
        if row.get("PostTypeId") != "2":
            continue
        post_id, parent = row.get("Id", "?"), row.get("ParentId", "")
        try:
            created = _time(row.get("CreationDate")) or datetime.now(UTC)
        except ValueError:
            yield Skipped(f"post {post_id}", "CreationDate is not an ISO time")
            continue
        if not post_id.isdigit() or not parent.isdigit():
            yield Skipped(f"post {post_id}", "answer without a usable Id or ParentId")
            continue
        owner = row.get("OwnerUserId")
        yield AnswerRow(_ext(site, post_id), _ext(site, parent), _ext(site, "user", owner) if owner else None,
                        html_to_markdown(row.get("Body") or "", base_url=base), _int(row.get("Score")), created,
                        bool(row.get("CommunityOwnedDate")))


@dataclass(frozen=True)
class QuestionLinks:
    external_id: str
    author_external_id: str | None
    accepted_external_id: str | None
    last_activity_at: datetime | None


def read_links(posts: Path, site: str) -> Iterator[QuestionLinks]:
    """Pass 3: what each question points to: its author, its accepted answer, its last activity."""
    for row in rows(posts):
        post_id = row.get("Id", "")
        if row.get("PostTypeId") != "1" or not post_id.isdigit():
            continue
        owner, accepted = row.get("OwnerUserId"), row.get("AcceptedAnswerId")
        try:
            active = _time(row.get("LastActivityDate"))
        except ValueError:
            active = None
        yield QuestionLinks(_ext(site, post_id), _ext(site, "user", owner) if owner else None,
                            _ext(site, accepted) if accepted else None, active)


@dataclass(frozen=True)
class UserRow:
    external_id: str
    se_id: int
    display_name: str
    reputation: int
    created_at: datetime
    last_seen_at: datetime | None


def read_users(path: Path, site: str) -> Iterator[UserRow | Skipped]:
    for row in rows(path):
        raw_id = row.get("Id", "")
        try:
            se_id = int(raw_id)
            created = _time(row.get("CreationDate")) or datetime.now(UTC)
            seen = _time(row.get("LastAccessDate"))
        except ValueError:
            yield Skipped(f"user {raw_id}", "user without a usable Id or dates")
            continue
        yield UserRow(_ext(site, "user", se_id), se_id, row.get("DisplayName") or "",
                      max(1, _int(row.get("Reputation"), 1)), created, seen)


@dataclass(frozen=True)
class CommentRow:
    external_id: str
    post_external_id: str
    author_external_id: str | None
    body: str
    created_at: datetime


def read_comments(path: Path, site: str) -> Iterator[CommentRow | Skipped]:
    for row in rows(path):
        comment_id, post_id = row.get("Id", "?"), row.get("PostId", "")
        text = (row.get("Text") or "").strip()
        try:
            created = _time(row.get("CreationDate")) or datetime.now(UTC)
        except ValueError:
            yield Skipped(f"comment {comment_id}", "CreationDate is not an ISO time")
            continue
        if not comment_id.isdigit() or not post_id.isdigit() or not text:
            yield Skipped(f"comment {comment_id}", "comment without a usable Id, PostId or text")
            continue
        owner = row.get("UserId")
        yield CommentRow(_ext(site, "comment", comment_id), _ext(site, post_id),
                         _ext(site, "user", owner) if owner else None, text, created)


# --- usernames ---------------------------------------------------------------------------------------------


def username_for(display_name: str, se_id: int, *, salt: str = "") -> str:
    """A valid, unique-per-site username: the display name in ASCII letters, digits and `._-`, then the id."""
    ascii_name = unicodedata.normalize("NFKD", display_name).encode("ascii", "ignore").decode()
    base = re.sub(r"[^A-Za-z0-9_.-]+", ".", ascii_name.strip())
    base = re.sub(r"[._-]{2,}", ".", base).strip("._-") or "user"
    suffix = f"-{se_id}" if se_id >= 0 else f"-n{-se_id}"
    if salt:
        suffix += "-" + hashlib.sha256(salt.encode()).hexdigest()[:4]
    return base[: 32 - len(suffix)].rstrip("._-") + suffix


# --- storing -----------------------------------------------------------------------------------------------

_INSERT_USERS = """
INSERT INTO users (username, password_hash, role, reputation, created_at, last_seen_at, external_id, imported)
SELECT x.username, $6, 'customer', x.rep, x.created, x.seen, x.ext, true
FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[], $5::timestamptz[])
     WITH ORDINALITY AS x(ext, username, rep, created, seen, n)
ORDER BY x.n
ON CONFLICT DO NOTHING
RETURNING external_id
"""
_INSERT_ANSWERS = """
INSERT INTO answers (question_id, author_id, body, score, is_accepted, is_wiki, created_at, updated_at, external_id)
SELECT q.id, u.id, x.body, x.score, false, x.wiki, x.at, x.at, x.ext
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::timestamptz[], $7::bool[])
     WITH ORDINALITY AS x(ext, qext, uext, body, score, at, wiki, n)
JOIN questions q ON q.external_id = x.qext
LEFT JOIN users u ON u.external_id = x.uext
ORDER BY x.n
ON CONFLICT (external_id) DO NOTHING
RETURNING id, question_id, author_id, body, created_at
"""
_ANSWER_REVISIONS = """
INSERT INTO revisions (answer_id, editor_id, number, body, created_at)
SELECT * FROM unnest($1::int[], $2::int[], $3::int[], $4::text[], $5::timestamptz[])
"""
_RECOUNT = """
UPDATE questions q SET answer_count = c.n, last_activity_at = greatest(q.last_activity_at, c.latest)
FROM (SELECT question_id, count(*)::int AS n, max(created_at) AS latest FROM answers
      WHERE question_id = ANY($1::int[]) GROUP BY question_id) c
WHERE q.id = c.question_id
"""
_LINK_AUTHORS = """
WITH x AS (SELECT * FROM unnest($1::text[], $2::text[]) AS x(qext, uext)),
authored AS (
    UPDATE questions q SET author_id = u.id FROM x JOIN users u ON u.external_id = x.uext
    WHERE q.external_id = x.qext AND q.author_id IS NULL RETURNING q.id, q.author_id
)
UPDATE revisions r SET editor_id = a.author_id FROM authored a
WHERE r.question_id = a.id AND r.number = 1 AND r.editor_id IS NULL
"""
_LINK_ACCEPTED = """
WITH x AS (SELECT * FROM unnest($1::text[], $2::text[]) AS x(qext, aext)),
pick AS (
    SELECT q.id AS qid, a.id AS aid FROM x
    JOIN questions q ON q.external_id = x.qext
    JOIN answers a ON a.external_id = x.aext AND a.question_id = q.id
    WHERE q.accepted_answer_id IS DISTINCT FROM a.id
),
marked AS (UPDATE answers SET is_accepted = true FROM pick WHERE answers.id = pick.aid RETURNING 1)
UPDATE questions q SET accepted_answer_id = pick.aid, status = 'resolved' FROM pick WHERE q.id = pick.qid
RETURNING q.id
"""
_LINK_ACTIVITY = """
UPDATE questions q SET last_activity_at = x.at
FROM unnest($1::text[], $2::timestamptz[]) AS x(qext, at)
WHERE q.external_id = x.qext AND x.at > q.last_activity_at
"""
_INSERT_COMMENTS = """
INSERT INTO comments (question_id, answer_id, author_id, body, created_at, external_id)
SELECT q.id, a.id, u.id, x.body, x.at, x.ext
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
     WITH ORDINALITY AS x(ext, pext, uext, body, at, n)
LEFT JOIN questions q ON q.external_id = x.pext
LEFT JOIN answers a ON a.external_id = x.pext
LEFT JOIN users u ON u.external_id = x.uext
WHERE (q.id IS NULL) <> (a.id IS NULL)
ORDER BY x.n
ON CONFLICT (external_id) DO NOTHING
RETURNING external_id
"""
_PRESENT = "SELECT external_id FROM {table} WHERE external_id = ANY($1::text[])"


@dataclass(kw_only=True)
class DumpReport(SkipTally):
    """What an import of a dump did. `added` and `present` count rows by kind (user, answer, comment);
    questions are in `questions`, the JSON Lines importer's own report."""

    site: str
    questions: ImportReport = field(default_factory=ImportReport)
    added: Counter[str] = field(default_factory=Counter)
    present: Counter[str] = field(default_factory=Counter)
    accepted: int = 0  # accepted answers linked by this run

    def summary(self) -> str:
        lines = [f"Stack Exchange site {self.site!r}", "questions: " + self.questions.summary().strip()]
        for kind in ("user", "answer", "comment"):
            if self.added[kind] or self.present[kind]:
                lines.append(f"{kind}s: {self.added[kind]} imported, {self.present[kind]} already present")
        lines.append(f"accepted answers linked: {self.accepted}")
        lines += [f"  skipped {n}: {reason}" for reason, n in self.skipped.most_common()]
        lines += [f"  e.g. {s.where}: {s.reason}" for s in self.examples]
        return "\n".join(lines)


def _chunks(items: Iterator[T], size: int) -> Iterator[list[T]]:
    while batch := list(islice(items, size)):
        yield batch


async def _present(conn: Any, table: str, external_ids: list[str]) -> set[str]:
    rows_ = await conn.execute_query_dict(_PRESENT.format(table=table), [external_ids])
    return {r["external_id"] for r in rows_}


async def store_users(batch: list[UserRow], site: str, report: DumpReport) -> None:
    """Inserts the users not yet imported; a username taken by someone else gets a site-salted variant."""
    async with in_transaction() as conn:
        present = await _present(conn, "users", [u.external_id for u in batch])
        todo = [u for u in batch if u.external_id not in present]
        for salt in ("", site):
            if not todo:
                break
            added = await conn.execute_query_dict(_INSERT_USERS, [
                [u.external_id for u in todo], [username_for(u.display_name, u.se_id, salt=salt) for u in todo],
                [u.reputation for u in todo], [u.created_at for u in todo], [u.last_seen_at for u in todo],
                UNUSABLE_PASSWORD,
            ])
            done = {r["external_id"] for r in added}
            report.added["user"] += len(done)
            todo = [u for u in todo if u.external_id not in done]
    report.present["user"] += len(present)
    for user in todo:
        report.skip(Skipped(f"user {user.se_id}", "username taken (also with the site-salted variant)"))


async def store_answers(batch: list[AnswerRow], report: DumpReport) -> None:
    async with in_transaction() as conn:
        present = await _present(conn, "answers", [a.external_id for a in batch])
        todo = [a for a in batch if a.external_id not in present]
        added = await conn.execute_query_dict(_INSERT_ANSWERS, [
            [a.external_id for a in todo], [a.question_external_id for a in todo],
            [a.author_external_id for a in todo], [a.body for a in todo], [a.score for a in todo],
            [a.created_at for a in todo], [a.is_wiki for a in todo],
        ]) if todo else []
        if added:
            await conn.execute_query(_ANSWER_REVISIONS, [
                [r["id"] for r in added], [r["author_id"] for r in added], [1] * len(added),
                [r["body"] for r in added], [r["created_at"] for r in added],
            ])
            await conn.execute_query(_RECOUNT, [sorted({r["question_id"] for r in added})])
    report.added["answer"] += len(added)
    report.present["answer"] += len(present)
    if len(added) < len(todo):
        # RETURNING gives ids, not external ids: the ones missing now are the orphans.
        async with in_transaction() as conn:
            stored = await _present(conn, "answers", [a.external_id for a in todo])
        for answer in (a for a in todo if a.external_id not in stored):
            report.skip(Skipped(answer.external_id, "answer to a question that was not imported"))


async def link_questions(batch: list[QuestionLinks], report: DumpReport) -> None:
    authored = [q for q in batch if q.author_external_id]
    accepted = [q for q in batch if q.accepted_external_id]
    active = [q for q in batch if q.last_activity_at]
    async with in_transaction() as conn:
        if authored:
            await conn.execute_query(_LINK_AUTHORS, [[q.external_id for q in authored],
                                                     [q.author_external_id for q in authored]])
        if accepted:
            linked = await conn.execute_query_dict(_LINK_ACCEPTED, [[q.external_id for q in accepted],
                                                                    [q.accepted_external_id for q in accepted]])
            report.accepted += len(linked)
        if active:
            await conn.execute_query(_LINK_ACTIVITY, [[q.external_id for q in active],
                                                      [q.last_activity_at for q in active]])


async def store_comments(batch: list[CommentRow], report: DumpReport) -> None:
    async with in_transaction() as conn:
        present = await _present(conn, "comments", [c.external_id for c in batch])
        todo = [c for c in batch if c.external_id not in present]
        added = await conn.execute_query_dict(_INSERT_COMMENTS, [
            [c.external_id for c in todo], [c.post_external_id for c in todo], [c.author_external_id for c in todo],
            [c.body for c in todo], [c.created_at for c in todo],
        ]) if todo else []
    report.added["comment"] += len(added)
    report.present["comment"] += len(present)
    done = {r["external_id"] for r in added}
    for comment in (c for c in todo if c.external_id not in done):
        report.skip(Skipped(comment.external_id, "comment on a post that was not imported"))


# --- the whole dump ----------------------------------------------------------------------------------------


def _sibling(posts: Path, name: str) -> Path | None:
    """`Users.xml` beside `Posts.xml`, matching the case the dump uses (`users.xml` in some mirrors)."""
    for candidate in (posts.with_name(name), posts.with_name(name.lower())):
        if candidate.exists():
            return candidate
    return None


async def _stream(items: Iterator[T | Skipped], report: DumpReport, store: Callable[[list[T]], Any],
                  bar: ProgressBar | None) -> None:
    for chunk in _chunks(items, ROW_BATCH):
        good: list[T] = []
        for item in chunk:
            if isinstance(item, Skipped):
                report.skip(item)
            else:
                good.append(item)
        if good:
            await store(good)
        if bar is not None:
            bar(len(chunk))
    if bar is not None:
        bar.close()


async def import_dump(posts: Path, *, embedder: Embedder, jobs: JobQueue, inline: bool, site: str | None = None,
                      batch_size: int = BATCH, progress: ProgressFactory | None = None) -> DumpReport:
    """Imports a dump (users, questions, answers, acceptance, comments); safe to run again."""
    site = site or site_name(posts)
    report = DumpReport(site=site)

    def bar(label: str, total: int | None) -> ProgressBar | None:
        return progress(label, total) if progress is not None else None

    users = _sibling(posts, "Users.xml")
    if users is not None:
        await _stream(read_users(users, site), report, lambda b: store_users(b, site, report),
                      bar("users", count_rows(users)[0]))
    rows_, answers = count_rows(posts)
    questions = rows_ - answers
    questions_bar = bar("questions (posts pass 1/3)", questions)
    report.questions = await import_records(read_questions(posts, site), embedder=embedder, jobs=jobs, inline=inline,
                                            batch_size=batch_size, progress=questions_bar)
    if questions_bar is not None:
        questions_bar.close()
    await _stream(read_answers(posts, site), report, lambda b: store_answers(b, report),
                  bar("answers (posts pass 2/3)", answers))
    await _stream(read_links(posts, site), report, lambda b: link_questions(b, report),
                  bar("accepted answers and authors (posts pass 3/3)", questions))
    comments = _sibling(posts, "Comments.xml")
    if comments is not None:
        await _stream(read_comments(comments, site), report, lambda b: store_comments(b, report),
                      bar("comments", count_rows(comments)[0]))
    report.added, report.present = +report.added, +report.present  # without the zero counts
    return report


def count_rows(path: Path) -> tuple[int, int]:
    """Rows, and answer rows, of a dump file by a fast byte scan: the totals of the progress bars."""
    rows_ = answers = 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            rows_ += chunk.count(b"<row ")
            answers += chunk.count(b'PostTypeId="2"')
    return rows_, answers


async def command_import_dump(res: Resources, posts: Path, *, site: str | None = None, batch_size: int = BATCH,
                              wait: bool = True) -> int:
    """`supportswarm import Posts.xml`: progress bars per pass, then the report. With REDIS_URL the arq
    workers embed the questions; `wait` follows them as `import` does for JSON Lines."""
    if not posts.exists():  # noqa: ASYNC240 - one stat before a long import
        print(f"error: no file {posts}", file=sys.stderr)
        return 2
    inline = not res.settings.redis_url
    report = await import_dump(posts, embedder=res.embedder, jobs=res.jobs, inline=inline, site=site,
                               batch_size=batch_size, progress=ProgressBar)
    print(report.summary())
    if not inline and wait and report.questions.embedded:
        await follow_workers(res)
    q = report.questions
    return 1 if q.read and not (q.imported or q.existing) else 0
