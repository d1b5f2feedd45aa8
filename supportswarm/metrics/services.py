"""Support-lead metrics from the event log: summary, trends, per-question export, upkeep.

Every figure is defined in `definitions.py` (shown on the dashboard). In short: questions are
counted by when they were asked (the cohort), and each question's outcome (response, resolution,
swarm) counts whenever it happened, up to now. Percentiles are PostgreSQL's `percentile_cont`
(linear interpolation between the two nearest values) over the questions that have the event;
questions still waiting are left out of the percentiles and show in `n`, the rates and the backlog.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from supportswarm import validation
from supportswarm.errors import InvalidInput
from supportswarm.jobs import JobName, JobQueue
from supportswarm.metrics import emergent
from supportswarm.metrics.rollup import STAFF_ROLES_SQL, TAIL_LIMIT, cte, fetch, tail_size

log = logging.getLogger(__name__)

DEFAULT_DAYS = 30
MAX_BUCKETS = 400
RESPONDERS = ("staff", "expert", "community")
BUCKETS = ("day", "week")
TOP_CONTRIBUTORS = 10
EXPORT_PAGE = 5_000
# (label, upper bound in seconds): unresolved questions by how long they have waited.
BACKLOG_AGES: list[tuple[str, float]] = [
    ("< 1 h", 3600), ("1–4 h", 4 * 3600), ("4–24 h", 86400), ("1–3 d", 3 * 86400), ("3–7 d", 7 * 86400),
    ("> 7 d", float("inf")),
]
_ROLE_CLASS = {"staff": f"IN {STAFF_ROLES_SQL}", "expert": "= 'expert'", "community": "= 'customer'"}
_RESPONDED_AT = {None: "first_response_at", "staff": "first_staff_at", "expert": "first_expert_at",
                 "community": "first_community_at"}
# The id of the question whose answer a SUGGESTION_ACCEPTED or ANSWER_REUSED event credits.
_INT = "'^[0-9]{1,9}$'"
_SUBJECT_QUESTION = (f"coalesce(CASE WHEN e.data->>'suggested_question_id' ~ {_INT} "
                     f"THEN (e.data->>'suggested_question_id')::int END, a.question_id, e.question_id)")
_SUBJECT_ANSWER = f"coalesce(e.answer_id, CASE WHEN e.data->>'answer_id' ~ {_INT} THEN (e.data->>'answer_id')::int END)"


@dataclass(frozen=True)
class Filters:
    since: datetime
    until: datetime
    tag: str | None = None
    responder: str | None = None

    def query(self) -> dict[str, str]:
        """The filters as URL query parameters (for links that keep them)."""
        q = {"since": self.since.isoformat(), "until": self.until.isoformat()}
        q.update({k: v for k, v in (("tag", self.tag), ("responder", self.responder)) if v})
        return q


def parse_time(raw: str | None, name: str, *, end_of_day: bool = False) -> datetime | None:
    """ISO 8601 date or date-time; without a zone it is UTC. With `end_of_day` a bare date means the end of
    that day, so `until=2024-05-31` includes May 31st."""
    if raw is None or raw.strip() == "":
        return None
    text = raw.strip()
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{name} must be an ISO 8601 date or time, e.g. 2024-05-01T00:00:00Z", field=name) from None
    if not 1970 <= value.year <= 9000:  # near year 1 or 9999 the window arithmetic overflows (a 500)
        raise InvalidInput(f"{name} must be between the years 1970 and 9000", field=name)
    if end_of_day and len(text) == 10:
        value += timedelta(days=1)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_filters(params: Mapping[str, str], *, now: datetime | None = None) -> Filters:
    """since/until (default: the last 30 days), tag, responder — each bad value a 400 naming its field."""
    until = parse_time(params.get("until"), "until", end_of_day=True) or (now or datetime.now(UTC))
    since = parse_time(params.get("since"), "since") or until - timedelta(days=DEFAULT_DAYS)
    if since >= until:
        raise InvalidInput("since must be before until", field="since")
    tag = validation.tags(params.get("tag") or None, "tag")
    if len(tag) > 1:
        raise InvalidInput("give one tag", field="tag")
    responder = params.get("responder") or None
    if responder is not None and responder not in RESPONDERS:
        raise InvalidInput(f"responder must be one of {', '.join(RESPONDERS)}", field="responder")
    return Filters(since=since, until=until, tag=tag[0] if tag else None, responder=responder)


def parse_bucket(raw: str | None) -> str:
    bucket = raw or "day"
    if bucket not in BUCKETS:
        raise InvalidInput(f"bucket must be one of {', '.join(BUCKETS)}", field="bucket")
    return bucket


@dataclass
class _Sql:
    """Parameters accumulated while a query is assembled: fragments are fixed text, values are $n."""

    params: list[Any] = field(default_factory=list)

    def arg(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}"

    def tag_clause(self, column: str, tag: str | None) -> str:
        return "" if tag is None else tagged(column, self.arg(tag))


def tagged(column: str, placeholder: str) -> str:
    return (f" AND {column} IN (SELECT qt.question_id FROM question_tags qt JOIN tags t ON t.id = qt.tag_id "
            f"WHERE t.name = {placeholder})")


def _pcts(column: str, where: str = "") -> str:
    """Median and p90 in one sort: percentile_cont over an array of fractions answers an array."""
    filt = f" FILTER (WHERE {where})" if where else ""
    return f"percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY {column}){filt}"


def _seconds(later: str, earlier: str) -> str:
    return f"extract(epoch FROM ({later} - {earlier}))::float8"


def _spread(row: Mapping[str, Any], prefix: str, unit: str = "_s") -> dict[str, Any]:
    median, p90 = row[f"{prefix}_pcts"] or (None, None)
    return {f"median{unit}": _round(median), f"p90{unit}": _round(p90), "n": int(row[f"{prefix}_n"])}


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def _duration_columns(name: str, later: str, earlier: str, where: str = "") -> str:
    cond = " AND ".join(c for c in (where, f"{later} IS NOT NULL") if c)
    return f"{_pcts(_seconds(later, earlier), where)} AS {name}_pcts, count(*) FILTER (WHERE {cond}) AS {name}_n"


async def _cohort(f: Filters) -> dict[str, Any]:
    sql = _Sql()
    responded = _RESPONDED_AT[f.responder]
    query = f"""{await cte()},
    linked AS (SELECT question_id FROM swarm_links UNION SELECT question_id FROM incident_questions)
    SELECT count(*) AS questions,
           count(*) FILTER (WHERE duplicate_at IS NULL) AS counted,
           count(*) FILTER (WHERE duplicate_at IS NULL AND resolved_at IS NOT NULL) AS resolved,
           count(*) FILTER (WHERE duplicate_at IS NOT NULL) AS duplicates,
           count(*) FILTER (WHERE swarm_opened_at IS NOT NULL OR linked.question_id IS NOT NULL) AS swarmed,
           {_duration_columns("ttfr", responded, "asked_at")},
           {_duration_columns("helper", "least(first_staff_at, first_expert_at)", "asked_at")},
           {_duration_columns("ttr", "resolved_at", "asked_at", "duplicate_at IS NULL")}
    FROM facts LEFT JOIN linked USING (question_id)
    WHERE asked_at >= {sql.arg(f.since)} AND asked_at < {sql.arg(f.until)} {sql.tag_clause("question_id", f.tag)}"""
    return (await fetch(query, sql.params))[0]


async def _asks(f: Filters) -> dict[str, Any]:
    """Deflections and knowledge reuse: events with no question of their own, tagged by the answer's question."""
    sql = _Sql()
    # The answer is only needed to find the tags; without a tag filter the index on (kind, at) answers alone.
    join = f"LEFT JOIN answers a ON a.id = {_SUBJECT_ANSWER}" if f.tag else ""
    query = f"""
    SELECT count(*) FILTER (WHERE e.kind = 'suggestion_accepted') AS deflected,
           count(*) FILTER (WHERE e.kind = 'answer_reused') AS reused
    FROM events e {join}
    WHERE e.kind IN ('suggestion_accepted', 'answer_reused')
      AND e.at >= {sql.arg(f.since)} AND e.at < {sql.arg(f.until)} {sql.tag_clause(_SUBJECT_QUESTION, f.tag)}"""
    return (await fetch(query, sql.params))[0]


async def _swarms(f: Filters) -> dict[str, Any]:
    sql = _Sql()
    query = f"""{await cte()}
    SELECT count(*) AS opened, count(resolved_at) AS resolved,
           count(*) FILTER (WHERE reason = 'incident') AS incidents,
           {_duration_columns("join", "first_join_at", "opened_at")},
           {_duration_columns("duration", "resolved_at", "opened_at")},
           {_pcts("size")} AS size_pcts, count(*) AS size_n
    FROM sfacts WHERE opened_at >= {sql.arg(f.since)} AND opened_at < {sql.arg(f.until)}
         {sql.tag_clause("question_id", f.tag)}"""
    return (await fetch(query, sql.params))[0]


async def backlog(f: Filters) -> dict[str, Any]:
    """Questions unresolved at `until` (not resolved, not closed as duplicates), by how long they had waited."""
    sql = _Sql()
    until = sql.arg(f.until)
    bounds = ", ".join(str(b) for _, b in BACKLOG_AGES[:-1])
    query = f"""{await cte()}
    SELECT width_bucket({_seconds(until, "asked_at")}, ARRAY[{bounds}]::float8[]) AS bucket, count(*) AS n,
           max({_seconds(until, "asked_at")}) AS oldest
    FROM facts WHERE asked_at < {until}
         -- The first condition alone is what the indexes answer (open ones, or closed after until);
         -- the other two make it exact.
         AND ((resolved_at IS NULL AND duplicate_at IS NULL) OR resolved_at >= {until} OR duplicate_at >= {until})
         AND (resolved_at IS NULL OR resolved_at >= {until}) AND (duplicate_at IS NULL OR duplicate_at >= {until})
         {sql.tag_clause("question_id", f.tag)}
    GROUP BY 1"""
    counts = {int(r["bucket"]): (int(r["n"]), float(r["oldest"])) for r in await fetch(query, sql.params)}
    buckets, low = [], 0.0
    for i, (label, high) in enumerate(BACKLOG_AGES):
        buckets.append({"label": label, "min_s": low, "max_s": None if high == float("inf") else high,
                        "count": counts.get(i, (0, 0.0))[0]})
        low = high
    oldest = max((o for _, o in counts.values()), default=None)
    return {"total": sum(n for n, _ in counts.values()), "oldest_s": _round(oldest), "by_age": buckets}


async def top_contributors(f: Filters, *, limit: int = TOP_CONTRIBUTORS) -> list[dict[str, Any]]:
    """People ranked by customers helped: their accepted answers (not on their own questions), later asks their
    answers solved (reuse) and resolved swarms they joined (not as the asker). First responses are shown too
    but do not rank: contribution, not task counts."""
    sql = _Sql()
    since, until = sql.arg(f.since), sql.arg(f.until)
    role = f" AND u.role {_ROLE_CLASS[f.responder]}" if f.responder else ""
    query = f"""{await cte()}
    SELECT u.id, u.username, u.role,
           count(*) FILTER (WHERE what = 'solution') AS solutions,
           count(*) FILTER (WHERE what = 'reuse') AS reuses,
           count(*) FILTER (WHERE what = 'swarm') AS swarms_resolved,
           count(*) FILTER (WHERE what = 'first_response') AS first_responses,
           count(*) FILTER (WHERE what <> 'first_response') AS helped
    FROM credits c JOIN users u ON u.id = c.user_id
    WHERE c.at >= {since} AND c.at < {until} {sql.tag_clause("c.question_id", f.tag)} {role}
    GROUP BY u.id ORDER BY helped DESC, first_responses DESC, u.username LIMIT {int(limit)}"""
    return [{k: (str(v) if k == "role" else v) for k, v in r.items()} for r in await fetch(query, sql.params)]


async def summary(f: Filters, *, jobs: JobQueue | None = None) -> dict[str, Any]:
    """The dashboard's figures for one window and filter set; the shape of GET /api/v1/metrics/summary.

    With `jobs`, also asks for the upkeep jobs when they are due (see `maintain`).
    """
    cohort, asks, swarms, waiting, people, _ = await asyncio.gather(
        _cohort(f), _asks(f), _swarms(f), backlog(f), top_contributors(f),
        maintain(jobs=jobs) if jobs is not None else asyncio.sleep(0),
    )
    questions, deflected = int(cohort["questions"]), int(asks["deflected"])
    return {
        "since": f.since.isoformat(), "until": f.until.isoformat(),
        "filters": {"tag": f.tag, "responder": f.responder},
        "questions": questions,
        "asks": questions + deflected,
        "time_to_first_response": _spread(cohort, "ttfr"),
        "time_to_first_staff_or_expert_response": _spread(cohort, "helper"),
        "time_to_resolution": _spread(cohort, "ttr"),
        "resolution_rate": _rate(int(cohort["resolved"]), int(cohort["counted"])),
        "resolved": int(cohort["resolved"]),
        "duplicates": int(cohort["duplicates"]),
        "deflection_rate": _rate(deflected, questions + deflected),
        "deflected": deflected,
        "swarm_rate": _rate(int(cohort["swarmed"]), questions),
        "swarms": {
            "opened": int(swarms["opened"]), "resolved": int(swarms["resolved"]),
            "incidents": int(swarms["incidents"]),
            "time_to_join": _spread(swarms, "join"),
            "size": _spread(swarms, "size", unit=""),
            "duration": _spread(swarms, "duration"),
        },
        "knowledge_reuse": int(asks["reused"]),
        "backlog": waiting,
        "top_contributors": people,
    }


async def dashboard(f: Filters, bucket: str, *, jobs: JobQueue | None = None) -> dict[str, Any]:
    """Everything the dashboard page shows: the summary, the trend per bucket, the emergent clusters."""
    figures, trend, clusters = await asyncio.gather(summary(f, jobs=jobs), trends(f, bucket), emergent.list_clusters())
    return {"summary": figures, "trends": trend, "clusters": clusters, "bucket": bucket}


async def trends(f: Filters, bucket: str) -> list[dict[str, Any]]:
    """Per day or week (UTC, weeks from Monday): the cohort figures of the questions asked in it."""
    starts = _bucket_starts(f, bucket)
    sql = _Sql()
    since, until, unit = sql.arg(f.since), sql.arg(f.until), sql.arg(bucket)
    tag_ref = sql.arg(f.tag) if f.tag else None
    responded = _RESPONDED_AT[f.responder]
    query = f"""{await cte()}
    SELECT date_trunc({unit}::text, asked_at AT TIME ZONE 'UTC') AS start, count(*) AS questions,
           count(*) FILTER (WHERE duplicate_at IS NULL) AS counted,
           count(*) FILTER (WHERE duplicate_at IS NULL AND resolved_at IS NOT NULL) AS resolved,
           {_duration_columns("ttfr", responded, "asked_at")},
           {_duration_columns("ttr", "resolved_at", "asked_at", "duplicate_at IS NULL")}
    FROM facts WHERE asked_at >= {since} AND asked_at < {until}
         {tagged("question_id", tag_ref) if tag_ref else ""} GROUP BY 1"""
    deflections = f"""
    SELECT date_trunc({unit}::text, e.at AT TIME ZONE 'UTC') AS start, count(*) AS deflected
    FROM events e {f"LEFT JOIN answers a ON a.id = {_SUBJECT_ANSWER}" if tag_ref else ""}
    WHERE e.kind = 'suggestion_accepted' AND e.at >= {since} AND e.at < {until}
          {tagged(_SUBJECT_QUESTION, tag_ref) if tag_ref else ""} GROUP BY 1"""
    rows, deflected = await asyncio.gather(fetch(query, sql.params), fetch(deflections, sql.params))
    by_start = {r["start"].replace(tzinfo=UTC): r for r in rows}
    defl = {r["start"].replace(tzinfo=UTC): int(r["deflected"]) for r in deflected}
    return [_trend_point(start, by_start.get(start), defl.get(start, 0)) for start in starts]


def _trend_point(start: datetime, row: Mapping[str, Any] | None, deflected: int) -> dict[str, Any]:
    questions = int(row["questions"]) if row else 0
    return {
        "start": start.isoformat(), "questions": questions, "deflected": deflected,
        "deflection_rate": _rate(deflected, questions + deflected),
        "resolution_rate": _rate(int(row["resolved"]), int(row["counted"])) if row else None,
        "time_to_first_response": _spread(row, "ttfr") if row else {"median_s": None, "p90_s": None, "n": 0},
        "time_to_resolution": _spread(row, "ttr") if row else {"median_s": None, "p90_s": None, "n": 0},
    }


def _bucket_starts(f: Filters, bucket: str) -> list[datetime]:
    start = f.since.replace(hour=0, minute=0, second=0, microsecond=0)
    step = timedelta(days=1)
    if bucket == "week":
        start -= timedelta(days=start.weekday())
        step = timedelta(weeks=1)
    count = int((f.until - start) / step) + 1
    if count > MAX_BUCKETS:
        raise InvalidInput(f"that window has more than {MAX_BUCKETS} {bucket}s; use a shorter window or "
                           "bucket=week", field="bucket")
    starts = [start + i * step for i in range(count)]
    return [s for s in starts if s < f.until]


EXPORT_COLUMNS = [
    "question_id", "external_id", "title", "tags", "status", "asked_at", "asker_id",
    "first_response_at", "first_response_type", "seconds_to_first_response",
    "first_staff_or_expert_response_at", "seconds_to_first_staff_or_expert_response",
    "resolved_at", "seconds_to_resolution", "duplicate_at", "swarm_id", "swarm_opened_at", "incident_swarm_id",
]


async def export_rows(f: Filters) -> AsyncIterator[str]:
    """CSV of per-question facts for the questions asked in the window, oldest first, in pages."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    yield _drain(out)
    after: tuple[datetime, int] = (datetime.min.replace(tzinfo=UTC), 0)
    while True:
        rows = await _export_page(f, after)
        for row in rows:
            writer.writerow([_csv_cell(row[c]) for c in EXPORT_COLUMNS])
        yield _drain(out)
        if len(rows) < EXPORT_PAGE:
            return
        after = (rows[-1]["asked_at"], int(rows[-1]["question_id"]))


async def _export_page(f: Filters, after: tuple[datetime, int]) -> list[dict[str, Any]]:
    sql = _Sql()
    helper = "least(f.first_staff_at, f.first_expert_at)"
    query = f"""{await cte()}
    SELECT f.question_id, q.external_id, q.title, q.status, f.asked_at, f.asker_id,
           f.first_response_at, f.first_response_type, {_seconds("f.first_response_at", "f.asked_at")}
               AS seconds_to_first_response,
           {helper} AS first_staff_or_expert_response_at,
           {_seconds(helper, "f.asked_at")} AS seconds_to_first_staff_or_expert_response,
           f.resolved_at, {_seconds("f.resolved_at", "f.asked_at")} AS seconds_to_resolution, f.duplicate_at,
           (SELECT string_agg(t.name, ' ' ORDER BY t.name) FROM question_tags qt JOIN tags t ON t.id = qt.tag_id
             WHERE qt.question_id = f.question_id) AS tags,
           s.id AS swarm_id, s.opened_at AS swarm_opened_at,
           (SELECT min(i.swarm_id) FROM incident_questions i WHERE i.question_id = f.question_id) AS incident_swarm_id
    FROM facts f JOIN questions q ON q.id = f.question_id LEFT JOIN swarms s ON s.question_id = f.question_id
    WHERE f.asked_at >= {sql.arg(f.since)} AND f.asked_at < {sql.arg(f.until)} {sql.tag_clause("f.question_id", f.tag)}
      AND (f.asked_at, f.question_id) > ({sql.arg(after[0])}, {sql.arg(after[1])})
    ORDER BY f.asked_at, f.question_id LIMIT {EXPORT_PAGE}"""
    return await fetch(query, sql.params)


def _drain(out: io.StringIO) -> str:
    text = out.getvalue()
    out.seek(0)
    out.truncate()
    return text


def _csv_cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        # A spreadsheet would run it as a formula (CSV injection): make it plain text.
        return "'" + value
    return "" if value is None else value


async def maintain(*, jobs: JobQueue) -> None:
    """Asks for a rollup as soon as reads start paying for many unfolded events (a bulk import between two
    periodic rollups); the job id makes a request during a run a no-op."""
    try:
        if await tail_size() > TAIL_LIMIT:
            await jobs.enqueue(JobName.METRICS_ROLLUP, job_id="metrics-rollup")
    except Exception:
        # Upkeep is best effort: the read is exact without it, so it must never fail the read.
        log.exception("could not ask for a metrics rollup")
