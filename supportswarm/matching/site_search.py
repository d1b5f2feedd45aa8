"""Site search (the search box): questions found by what was written anywhere in their thread.

Full text over questions, answers, comments and swarm transcripts, in PostgreSQL's web-search syntax
("quoted phrases", -exclusions, or), one row per question, fused by reciprocal rank with matching's
semantic side (`search.vector_candidates`, the nearest question vectors), paginated, each row with a
highlighted snippet of where it matched. Qualifiers in the query narrow it: tag:NAME, is:STATUS,
user:NAME (asked by).

Who sees what: a resolved swarm's transcript is public; an open one counts only for viewers who may
join the room (accounts.permissions.can_join_swarm, and the askers swarm.services.ensure_can_join
admits); a duplicate's matches count for its canonical question; hidden posts never match.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape
from tortoise import connections

from embeddings import Embedder
from supportswarm.accounts import permissions
from supportswarm.accounts.models import User
from supportswarm.accounts.services import USERNAME_RE
from supportswarm.errors import InvalidInput
from supportswarm.forum.models import Question
from supportswarm.forum.services import question_summary
from supportswarm.matching.search import Hit, Mode, fuse, vector_candidates
from supportswarm.matching.services import encode_one
from supportswarm.validation import TAG_RE

Q_MAX = 500
PAGE_SIZE = 20
MAX_RESULTS = 1000  # ranked per search; `total` still counts every match
MAX_PAGE = MAX_RESULTS // PAGE_SIZE
STATUSES = ("open", "swarming", "resolved", "unanswered")  # the question list's filters, duplicates folded
# Where a result matched (`Result.kind`): similar = by meaning alone; listed = qualifiers and no words.
KINDS = ("question", "duplicate", "answer", "comment", "transcript", "similar", "listed")
TEXT_WINDOW = 100  # the best full-text matches fused with the vector side; deeper ones keep text order
VECTOR_WINDOW = 30  # nearest questions by meaning
# A question found by meaning alone (no word of the query in its thread) is a result only this close to
# the query; below it the nearest questions of a query about nothing in the forum would be noise. On
# BANKING77 (all-MiniLM-L6-v2) 94% of a test query's ten nearest questions are above 0.6; off-topic
# queries ("how do I bake sourdough bread", "wifi keeps dropping at night") stay below 0.4.
SEMANTIC_MIN_COSINE = 0.6

# How much a match counts by where it is, as ts_rank_cd weight arrays {D, C, B, A}: questions keep
# PostgreSQL's default (title A = 1.0, body B = 0.4); answers count as a body, comments and room
# messages half as much (their vectors are unweighted, so only D matters).
ANSWER_WEIGHTS = "{0.4,0.4,0.4,0.4}"
CHAT_WEIGHTS = "{0.2,0.2,0.2,0.2}"
# ts_headline marks matches with two private-use characters, stripped from the text beforehand, so
# that the snippet can be HTML-escaped as a whole and only the marks become <mark> elements. It also
# drops whatever its parser takes for an HTML tag ("<div>" in a question about HTML): "<" goes in as a
# third private-use character and comes back as "&lt;", so the snippet shows the text as written.
# Titles are highlighted whole, without the fragment options: in fragment mode PostgreSQL 18 cuts a title
# down to the words after its first match ("Where is the PIN of my card?" became "card").
START, STOP, LT = "\ue000", "\ue001", "\ue002"
# Markdown's emphasis and code marks mean nothing in a one-line snippet ("**Cards → Freeze**"): dropped.
_PLAIN = "regexp_replace({}, '\\*\\*|__|`', '', 'g')"
_HEADLINE = f'StartSel={START}, StopSel={STOP}, MaxWords=35, MinWords=15, ShortWord=3, MaxFragments=2, ' \
            'FragmentDelimiter=" … "'

# The query: nothing when it is not indexable (only exclusions or stop words), so that it can never
# turn into a scan of every row; then every other CTE joins nothing.
_QUERY_CTE = """query AS MATERIALIZED (
    SELECT q FROM (SELECT websearch_to_tsquery('english', $1::text) AS q) AS w WHERE querytree(q) NOT IN ('T', '')
)"""


def _visible_room(everything: str, own: str) -> str:
    """Which swarm transcripts (alias s) count: resolved ones, and open ones the viewer may join."""
    return f"(s.status = 'resolved' OR {everything}::bool OR s.id = ANY({own}::int[]))"


# The filters on the question a row stands for (alias c): $2 statuses, $3 tags (all of them), $4 asker.
_FILTERS = """c.status <> 'duplicate' AND c.hidden_at IS NULL
    AND coalesce((SELECT bool_and(CASE st WHEN 'unanswered' THEN c.answer_count = 0 AND c.status IN ('open', 'swarming')
                                         ELSE c.status = st END)
                  FROM unnest($2::text[]) AS st), true)
    AND NOT EXISTS (SELECT 1 FROM unnest($3::text[]) AS want(name) WHERE NOT EXISTS (
        SELECT 1 FROM question_tags AS qt JOIN tags AS t ON t.id = qt.tag_id
        WHERE qt.question_id = c.id AND t.name = want.name))
    AND ($4::text IS NULL OR c.author_id = (SELECT id FROM users WHERE lower(username) = lower($4::text)))"""

# Full text: every matching post counts for its question (a duplicate's for its canonical question), the
# best match of each kind once, so fifty messages repeating a word do not outweigh the title.
# $1 query, $2-$4 filters, $5 every open room visible, $6 the open rooms visible, $7 limit.
_TEXT_SQL = f"""
WITH {_QUERY_CTE}, hits AS (
    SELECT p.id AS question_id, 'question' AS kind, ts_rank_cd(p.search, query.q, 1) AS rank
    FROM query JOIN questions AS p ON p.search @@ query.q
    UNION ALL
    SELECT a.question_id, 'answer', ts_rank_cd('{ANSWER_WEIGHTS}', a.search, query.q, 1)
    FROM query JOIN answers AS a ON a.search @@ query.q WHERE a.hidden_at IS NULL
    UNION ALL
    SELECT coalesce(m.question_id, a.question_id), 'comment', ts_rank_cd('{CHAT_WEIGHTS}', m.search, query.q, 1)
    FROM query JOIN comments AS m ON m.search @@ query.q LEFT JOIN answers AS a ON a.id = m.answer_id
    WHERE m.hidden_at IS NULL AND a.hidden_at IS NULL
    UNION ALL
    SELECT s.question_id, 'transcript', ts_rank_cd('{CHAT_WEIGHTS}', m.search, query.q, 1)
    FROM query JOIN swarm_messages AS m ON m.search @@ query.q JOIN swarms AS s ON s.id = m.swarm_id
    WHERE m.hidden_at IS NULL AND {_visible_room("$5", "$6")}
), best AS (
    SELECT question_id, kind, max(rank) AS rank FROM hits GROUP BY question_id, kind
), folded AS (
    SELECT coalesce(p.duplicate_of_id, p.id) AS id, sum(b.rank) AS rank
    FROM best AS b JOIN questions AS p ON p.id = b.question_id
    WHERE p.hidden_at IS NULL
    GROUP BY 1
)
SELECT c.id, count(*) OVER () AS total
FROM folded AS f JOIN questions AS c ON c.id = f.id
WHERE {_FILTERS}
ORDER BY f.rank DESC, c.last_activity_at DESC, c.id DESC
LIMIT $7
"""

# Which of the questions found by meaning alone pass the filters. $1 their ids, $2-$4 filters.
_ADMIT_SQL = f"SELECT c.id FROM questions AS c WHERE c.id = ANY($1::int[]) AND {_FILTERS}"

# Qualifiers and no words: the filtered questions, most recently active first. $1 limit, $2-$4 filters.
_LIST_SQL = f"""
SELECT c.id, count(*) OVER () AS total FROM questions AS c WHERE {_FILTERS}
ORDER BY c.last_activity_at DESC, c.id DESC LIMIT $1
"""

# One page's snippets: each question's best match (its duplicates' posts included), highlighted, and
# every kind of place it matched. $1 query, $2 the page's question ids, $3/$4 visible open rooms.
_SNIPPET_SQL = f"""
WITH {_QUERY_CTE}, members AS (
    SELECT p.id AS canonical, p.id AS question_id FROM unnest($2::int[]) AS p(id)
    UNION ALL
    SELECT d.duplicate_of_id, d.id FROM questions AS d WHERE d.duplicate_of_id = ANY($2::int[]) AND d.hidden_at IS NULL
), hits AS (
    SELECT m.canonical, CASE WHEN p.id = m.canonical THEN 'question' ELSE 'duplicate' END AS kind,
           p.id AS question_id, NULL::int AS answer_id, NULL::int AS swarm_id, NULL::int AS seq, p.body,
           ts_rank_cd(p.search, query.q, 1) AS rank
    FROM query, members AS m JOIN questions AS p ON p.id = m.question_id WHERE p.search @@ query.q
    UNION ALL
    SELECT m.canonical, 'answer', a.question_id, a.id, NULL, NULL, a.body,
           ts_rank_cd('{ANSWER_WEIGHTS}', a.search, query.q, 1)
    FROM query, members AS m JOIN answers AS a ON a.question_id = m.question_id
    WHERE a.search @@ query.q AND a.hidden_at IS NULL
    UNION ALL
    SELECT m.canonical, 'comment', m.question_id, NULL, NULL, NULL, k.body,
           ts_rank_cd('{CHAT_WEIGHTS}', k.search, query.q, 1)
    FROM query, members AS m JOIN comments AS k ON k.question_id = m.question_id
    WHERE k.search @@ query.q AND k.hidden_at IS NULL
    UNION ALL
    SELECT m.canonical, 'comment', m.question_id, a.id, NULL, NULL, k.body,
           ts_rank_cd('{CHAT_WEIGHTS}', k.search, query.q, 1)
    FROM query, members AS m JOIN answers AS a ON a.question_id = m.question_id
    JOIN comments AS k ON k.answer_id = a.id
    WHERE k.search @@ query.q AND k.hidden_at IS NULL AND a.hidden_at IS NULL
    UNION ALL
    SELECT m.canonical, 'transcript', m.question_id, NULL, s.id, x.seq, x.body,
           ts_rank_cd('{CHAT_WEIGHTS}', x.search, query.q, 1)
    FROM query, members AS m JOIN swarms AS s ON s.question_id = m.question_id
    JOIN swarm_messages AS x ON x.swarm_id = s.id
    WHERE x.search @@ query.q AND x.hidden_at IS NULL AND {_visible_room("$3", "$4")}
), best AS (
    SELECT DISTINCT ON (canonical) * FROM hits ORDER BY canonical, rank DESC, kind
)
SELECT p.id, coalesce(b.kind, 'similar') AS kind, coalesce(b.question_id, p.id) AS question_id, b.answer_id,
       b.swarm_id, b.seq, p.title, coalesce(b.body, p.body) AS body,
       ts_headline('english', translate(p.title, '<{START}{STOP}', '{LT}'), query.q,
                   'HighlightAll=true, StartSel={START}, StopSel={STOP}') AS title_marked,
       ts_headline('english', translate({_PLAIN.format("coalesce(b.body, p.body)")}, '<{START}{STOP}', '{LT}'), query.q,
                   '{_HEADLINE}') AS snippet_marked,
       ARRAY(SELECT DISTINCT h.kind FROM hits AS h WHERE h.canonical = p.id ORDER BY h.kind) AS kinds
FROM questions AS p LEFT JOIN best AS b ON b.canonical = p.id LEFT JOIN query ON true
WHERE p.id = ANY($2::int[])
"""

# The open swarms a customer may join as an asker: their question's own room, or the (incident) room
# one of their questions was linked into (swarm.services.ensure_can_join, seen from the user's side).
_OWN_ROOMS_SQL = """
SELECT s.id FROM swarms AS s JOIN questions AS p ON p.id = s.question_id WHERE s.status = 'open' AND p.author_id = $1
UNION
SELECT l.swarm_id FROM swarm_links AS l JOIN questions AS p ON p.id = l.question_id WHERE p.author_id = $1
"""

_TOKEN = re.compile(r'"[^"]*"?|\S+')
_QUALIFIER = re.compile(r"^(tag|is|user):(\S+)$", re.IGNORECASE)

Filters = list[Any]  # [$2 statuses, $3 tags, $4 asker] of the statements above
Scope = tuple[bool, list[int]]  # every open room visible, else these open rooms


@dataclass(frozen=True, slots=True)
class Query:
    """The search box's text taken apart."""

    text: str  # for websearch_to_tsquery: the words, "phrases", -exclusions and ors, qualifiers removed
    words: str  # only the words to look for: the text the semantic side embeds
    exact: bool  # phrases, exclusions or "or": the user asked for exact text, so meaning alone finds nothing
    statuses: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    user: str | None = None

    def filters(self) -> Filters:
        return [list(self.statuses), list(self.tags), self.user]


@dataclass(frozen=True, slots=True)
class Result:
    question: Question
    kind: str  # where the snippet comes from, one of KINDS
    matched_in: list[str]  # every kind of place the words were found
    url: str  # the matching post
    title_html: Markup
    snippet_html: Markup


@dataclass(frozen=True, slots=True)
class Found:
    results: list[Result]
    page: int
    total: int
    timings: dict[str, float] = field(default_factory=dict)  # seconds, for the Server-Timing header


def parse_query(q: str, *, status: str | None = None, tag: str | None = None) -> Query:
    """Qualifiers out of `q` (tag:x, is:resolved, user:name), merged with the `status` and `tag` parameters
    (every filter applies); the rest is the full-text query. InvalidInput names the field at fault."""
    statuses = [] if status is None else [_status(status, "status")]
    tags = [] if tag is None else [_tag(tag, "tag")]
    user: str | None = None
    kept: list[str] = []
    words: list[str] = []
    for token in _TOKEN.findall(q):
        qualifier = _QUALIFIER.match(token)
        if qualifier is None:
            kept.append(token)
            if not (token.startswith("-") or token.lower() == "or"):
                words.append(token.strip('"'))
            continue
        key, value = qualifier.group(1).lower(), qualifier.group(2)
        if key == "is":
            statuses.append(_status(value.lower(), "q"))
        elif key == "tag":
            tags.append(_tag(value, "q"))
        elif not USERNAME_RE.match(value) or (user is not None and user.lower() != value.lower()):
            raise InvalidInput("user: takes one username (3-32 of A-Z a-z 0-9 _ . -)", field="q")
        else:
            user = value
    if kept and not any(w.strip() for w in words):
        raise InvalidInput("q needs at least one word to look for, not only words to leave out", field="q")
    text = " ".join(kept)
    exact = any(t.startswith(('"', "-")) or t.lower() == "or" for t in kept)
    return Query(text, " ".join(words), exact, tuple(dict.fromkeys(statuses)), tuple(dict.fromkeys(tags)), user)


def _status(value: str, name: str) -> str:
    if value not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}", field=name)
    return value


def _tag(value: str, name: str) -> str:
    value = value.lower()
    if not TAG_RE.match(value):
        raise InvalidInput("tag may use a-z, 0-9 and + # . - (at most 32 characters)", field=name)
    return value


async def visible_rooms(viewer: User | None, *, expert_reputation: int) -> Scope:
    """Whose open swarm transcripts the viewer may search: every one (helpers: they may join any room),
    those of their own questions (askers), or none (anonymous)."""
    if viewer is None:
        return False, []
    if permissions.can_join_swarm(viewer, None, expert_reputation=expert_reputation):
        return True, []
    return False, [r["id"] for r in await _rows(_OWN_ROOMS_SQL, [viewer.id])]


async def search(q: str, *, page: int = 1, status: str | None = None, tag: str | None = None,
                 viewer: User | None, embedder: Embedder, expert_reputation: int) -> Found:
    """Page `page` (1..MAX_PAGE) of the questions matching `q` as `viewer` may see them, best first, and
    how many match."""
    query = parse_query(q, status=status, tag=tag)
    scope = await visible_rooms(viewer, expert_reputation=expert_reputation)
    clock = time.perf_counter
    start = clock()
    if query.text:
        ids, total, timings = await _ranked(query, scope, embedder)
    else:  # qualifiers only: the filtered question list
        rows = await _rows(_LIST_SQL, [MAX_RESULTS, *query.filters()])
        ids, total, timings = [r["id"] for r in rows], (rows[0]["total"] if rows else 0), {}
    ranked = clock()
    results = await _page(query, ids[(page - 1) * PAGE_SIZE:page * PAGE_SIZE], scope)
    timings |= {"rank": ranked - start, "page": clock() - ranked}
    return Found(results, page, total, timings)


async def _ranked(query: Query, scope: Scope, embedder: Embedder) -> tuple[list[int], int, dict[str, float]]:
    """Full-text matches in order, with the best TEXT_WINDOW fused with the nearest questions by meaning.

    The full-text statement runs while the query is being embedded (as find_similar does)."""
    clock = time.perf_counter
    start = clock()

    async def text() -> tuple[list[dict[str, Any]], float]:
        found = await _rows(_TEXT_SQL, [query.text, *query.filters(), *scope, MAX_RESULTS])
        return found, clock() - start

    text_task = asyncio.ensure_future(text())
    try:
        vector = await encode_one(query.words, embedder=embedder)
    finally:
        embedded = clock()
        rows, text_s = await text_task
    both = clock()
    matched = [r["id"] for r in rows]
    window = {qid: (rank, 0.0) for rank, qid in enumerate(matched[:TEXT_WINDOW], 1)}
    hits = await vector_candidates(vector, window, model=embedder.name, per_side=VECTOR_WINDOW)
    admitted = await _admit(hits, query)
    fused = [h.id for h in fuse([h for h in hits if h.text_rank is not None or h.id in admitted], Mode.RRF)]
    timings = {"embed": embedded - start, "text": text_s, "vector": clock() - both}
    return (fused + matched[TEXT_WINDOW:])[:MAX_RESULTS], (rows[0]["total"] if rows else 0) + len(admitted), timings


async def _admit(hits: list[Hit], query: Query) -> set[int]:
    """The questions found by meaning alone that are results: close enough, and passing the filters."""
    if query.exact:
        return set()
    near = [h.id for h in hits if h.text_rank is None and (h.cosine or 0.0) >= SEMANTIC_MIN_COSINE]
    if not near:
        return set()
    return {r["id"] for r in await _rows(_ADMIT_SQL, [near, *query.filters()])}


async def _page(query: Query, ids: list[int], scope: Scope) -> list[Result]:
    if not ids:
        return []
    rows = {r["id"]: r for r in await _rows(_SNIPPET_SQL, [query.text, ids, *scope])}
    questions = {q.id: q for q in await Question.filter(id__in=ids).prefetch_related("tags", "author")}
    return [_result(questions[i], rows[i], listed=not query.text) for i in ids if i in questions and i in rows]


def _result(question: Question, row: dict[str, Any], *, listed: bool) -> Result:
    kind = "listed" if listed else row["kind"]
    if kind == "transcript":
        url = f"/swarms/{row['swarm_id']}#msg-{row['seq']}"
    else:
        url = f"/questions/{row['question_id']}" + (f"#answer-{row['answer_id']}" if row["answer_id"] else "")
    return Result(question, kind, list(row["kinds"]) or [kind], url,
                  highlight(row["title_marked"], row["title"]), highlight(row["snippet_marked"], row["body"]))


def highlight(marked: str | None, plain: str, *, limit: int = 240) -> Markup:
    """ts_headline's output as safe HTML: all of it escaped, then only its marks become <mark> elements.
    None (no indexable query): the start of the plain text, escaped."""
    if marked is None:
        text = " ".join(plain.split())
        return escape(text if len(text) <= limit else text[:limit].rstrip() + "…")
    html = str(escape(" ".join(marked.split())))
    return Markup(html.replace(START, "<mark>").replace(STOP, "</mark>").replace(LT, "&lt;"))


def results_json(found: Found) -> dict[str, Any]:
    """The `GET /api/v1/search` reply: question summaries with where they matched, paginated."""
    return {
        "items": [question_summary(r.question) | {
            "matched_in": r.matched_in, "match": {"in": r.kind, "url": r.url},
            "title_html": str(r.title_html), "snippet_html": str(r.snippet_html),
        } for r in found.results],
        "page": found.page, "per_page": PAGE_SIZE, "total": found.total,
    }


async def _rows(sql: str, args: list[Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await connections.get("default").execute_query_dict(sql, args)
    return rows
