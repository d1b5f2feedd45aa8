"""Outgoing webhooks: admins point event kinds at a URL; the worker delivers them signed, with retries.

The event log is the outbox. Every domain already records `question_asked`, `swarm_opened` and
`question_resolved` in the same transaction as the change itself, so a periodic job that reads the
log and turns new events into deliveries needs no hook in any other domain, and a rolled-back change
never produces a webhook.

Reading the log by event id alone would skip events: ids are handed out at insert but become visible
at commit, so event 100 can commit after event 101 was read. As the metrics rollup does, the
dispatcher reads only events of transactions older than its snapshot's xmin (all of those have ended)
and keeps a (transaction id, event id) cursor in `webhook_dispatch_state`, locked FOR UPDATE so
several workers never dispatch the same page twice. Deliveries are unique per (webhook, event) anyway.

Security (SSRF): only admins configure webhooks; only http and https URLs are accepted; redirects are
not followed; receivers' response bodies are never stored or shown, only the status code, so a webhook
cannot be used to read a page of the internal network. A deployment that must keep the worker away
from internal addresses should also restrict its egress at the network level.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from supportswarm.accounts.models import User
from supportswarm.errors import InvalidInput, NotFound
from supportswarm.jobs import JobName, JobQueue
from supportswarm.metrics.events import EventKind
from supportswarm.moderation.visibility import HIDDEN_TEXT
from supportswarm.webhooks.models import DeliveryStatus, Webhook, WebhookAttempt, WebhookDelivery

EVENT_KINDS = (EventKind.QUESTION_ASKED, EventKind.SWARM_OPENED, EventKind.QUESTION_RESOLVED)
URL_MAX = 2000
DESCRIPTION_MAX = 200
DISPATCH_PAGE = 500
TIMEOUT_S = 10.0
# A claimed delivery is retried by someone else only after this long (a worker died mid-request).
LEASE_S = 120
BACKOFF_BASE_S = 15
BACKOFF_CAP_S = 3600
MAX_ATTEMPTS = 10
DELIVERY_PAGE = 50
USER_AGENT = "SupportSwarm-Webhooks/1"


def now() -> datetime:
    return datetime.now(UTC)


# --- configuration -------------------------------------------------------------------------------


def check_url(url: object) -> str:
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput("url is required", field="url")
    url = url.strip()
    if len(url) > URL_MAX:
        raise InvalidInput(f"url must be at most {URL_MAX} characters", field="url")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise InvalidInput("url must not contain spaces or control characters", field="url")
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. "http://[::1/x": an unclosed IPv6 bracket
        raise InvalidInput("url is not a valid URL", field="url") from None
    if parts.scheme not in {"http", "https"}:
        raise InvalidInput("url must start with http:// or https://", field="url")
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise InvalidInput("url has an invalid port", field="url") from None
    if not parts.hostname:
        raise InvalidInput("url must name a host", field="url")
    return url


def check_events(raw: object) -> list[str]:
    """A list (or comma-separated string) of event kinds; empty or missing means every kind."""
    if raw is None or raw == "" or raw == []:
        return [str(k) for k in EVENT_KINDS]
    if isinstance(raw, str):
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list) or not all(isinstance(k, str) for k in raw):
        raise InvalidInput("events must be a list of event kinds", field="events")
    known = {str(k) for k in EVENT_KINDS}
    unknown = [k for k in raw if k not in known]
    if unknown:
        raise InvalidInput(f"unknown event {unknown[0][:40]!r}; choose from {', '.join(sorted(known))}",
                           field="events")
    return [k for k in (str(e) for e in EVENT_KINDS) if k in raw]


def check_description(raw: object) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise InvalidInput("description must be a string", field="description")
    text = " ".join(raw.split())
    if len(text) > DESCRIPTION_MAX:
        raise InvalidInput(f"description must be at most {DESCRIPTION_MAX} characters", field="description")
    return text


async def create_webhook(admin: User, url: object, *, events: object = None, description: object = None) -> Webhook:
    """Stores a webhook with a fresh secret. Only events that happen from now on are delivered to it."""
    return await Webhook.create(
        url=check_url(url), events=check_events(events), description=check_description(description),
        secret="whsec_" + secrets.token_urlsafe(32), created_by=admin, created_at=now(),
    )


async def get_webhook(webhook_id: int) -> Webhook:
    hook = await Webhook.filter(id=webhook_id).first()
    if hook is None:
        raise NotFound(f"no webhook with id {webhook_id}")
    return hook


async def delete_webhook(webhook_id: int) -> None:
    """Deletes the webhook with its delivery log; pending deliveries are dropped."""
    if not await Webhook.filter(id=webhook_id).delete():
        raise NotFound(f"no webhook with id {webhook_id}")


def webhook_dict(hook: Webhook, *, with_secret: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": hook.id, "url": hook.url, "events": list(hook.events), "description": hook.description,
        "is_active": hook.is_active, "created_at": hook.created_at.isoformat(),
    }
    if with_secret:
        data["secret"] = hook.secret
    return data


_COUNTS_SQL = """
SELECT webhook_id, count(*) FILTER (WHERE status = 'pending')::int AS pending,
       count(*) FILTER (WHERE status = 'delivered')::int AS delivered,
       count(*) FILTER (WHERE status = 'failed')::int AS failed
FROM webhook_deliveries GROUP BY webhook_id
"""


async def list_webhooks() -> list[dict[str, Any]]:
    """Every webhook with its delivery counts by status."""
    counts = {r["webhook_id"]: r for r in await _db().execute_query_dict(_COUNTS_SQL)}
    items = []
    for hook in await Webhook.all().order_by("id"):
        row = counts.get(hook.id, {})
        items.append(webhook_dict(hook) | {"deliveries": {s: row.get(s, 0) for s in DeliveryStatus}})
    return items


def delivery_dict(d: WebhookDelivery, attempts: list[WebhookAttempt]) -> dict[str, Any]:
    return {
        "id": d.id, "event_id": d.event_id, "event": d.event_kind, "status": str(d.status),
        "attempts": d.attempts, "last_status_code": d.last_status_code, "last_error": d.last_error,
        "next_attempt_at": d.next_attempt_at.isoformat() if d.status == DeliveryStatus.PENDING else None,
        "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
        "created_at": d.created_at.isoformat(),
        "log": [{"number": a.number, "at": a.at.isoformat(), "status_code": a.status_code, "error": a.error,
                 "duration_ms": a.duration_ms} for a in attempts],
    }


async def webhook_log(webhook_id: int, *, page: int = 1, per_page: int = DELIVERY_PAGE) -> dict[str, Any]:
    """The webhook (with its secret: admins configure receivers with it) and its deliveries, newest first."""
    hook = await get_webhook(webhook_id)
    query = WebhookDelivery.filter(webhook_id=hook.id)
    total = await query.count()
    deliveries = await query.order_by("-id").offset((page - 1) * per_page).limit(per_page)
    attempts = await WebhookAttempt.filter(delivery_id__in=[d.id for d in deliveries]).order_by("number")
    by_delivery: dict[int, list[WebhookAttempt]] = {}
    for a in attempts:
        by_delivery.setdefault(a.delivery_id, []).append(a)
    return {
        "webhook": webhook_dict(hook, with_secret=True), "page": page, "total": total, "per_page": per_page,
        "deliveries": [delivery_dict(d, by_delivery.get(d.id, [])) for d in deliveries],
    }


async def redeliver(delivery_id: int, *, jobs: JobQueue) -> WebhookDelivery:
    """Sends a delivery again now, whatever its status; receivers de-duplicate by event id."""
    # The attempt count is kept (the log numbers attempts): a failed delivery gets one more try.
    updated = await WebhookDelivery.filter(id=delivery_id).update(status=DeliveryStatus.PENDING, next_attempt_at=now())
    if not updated:
        raise NotFound(f"no delivery with id {delivery_id}")
    delivery = await WebhookDelivery.get(id=delivery_id)
    await _enqueue(jobs, delivery.id, delivery.next_attempt_at)
    return delivery


# --- dispatch: event log -> deliveries ------------------------------------------------------------


def _db() -> Any:
    return connections.get("default")


_STATE_SQL = """
INSERT INTO webhook_dispatch_state (name, last_txid) VALUES ('events', '0') ON CONFLICT (name) DO NOTHING;
"""
_LOCK_SQL = ("SELECT last_txid::text AS txid, last_event_id, pg_snapshot_xmin(pg_current_snapshot())::text AS xmin "
             "FROM webhook_dispatch_state WHERE name = 'events' FOR UPDATE")
# Events of finished transactions after the cursor, with what their payload says about the question,
# the actor and the swarm. Events an import wrote (data.imported) describe the past: they are not news.
_EVENTS_SQL = """
SELECT e.id, e.kind, e.at, e.txid::text AS txid, e.question_id, e.answer_id, e.swarm_id,
       u.id AS actor_id, u.username AS actor_username, u.role AS actor_role,
       q.title, q.hidden_at IS NOT NULL AS question_hidden, q.external_id, q.status AS question_status,
       q.accepted_answer_id,
       (SELECT coalesce(array_agg(t.name ORDER BY t.name), '{}') FROM question_tags qt
        JOIN tags t ON t.id = qt.tag_id WHERE qt.question_id = q.id) AS tags,
       s.reason AS swarm_reason, s.status AS swarm_status
FROM events e
LEFT JOIN users u ON u.id = e.actor_id
LEFT JOIN questions q ON q.id = e.question_id
LEFT JOIN swarms s ON s.id = e.swarm_id
WHERE e.txid >= $1::text::xid8 AND (e.txid, e.id) > ($1::text::xid8, $2) AND e.txid < $3::text::xid8
  AND e.kind = ANY($4::text[]) AND coalesce(e.data->>'imported', '') <> 'true'
ORDER BY e.txid, e.id
LIMIT $5
"""


@dataclass(frozen=True)
class DispatchResult:
    events: int
    deliveries: int
    enqueued: int


async def dispatch_events(*, jobs: JobQueue, limit: int = DISPATCH_PAGE) -> DispatchResult:
    """Turns new events into deliveries (one page of at most `limit` events), then enqueues every due delivery."""
    events = created = 0
    async with in_transaction() as conn:
        await conn.execute_script(_STATE_SQL)
        state = (await conn.execute_query_dict(_LOCK_SQL))[0]
        hooks = await Webhook.filter(is_active=True).using_db(conn)
        # Without a webhook there is nothing to read: the cursor just moves on.
        rows = await conn.execute_query_dict(
            _EVENTS_SQL, [state["txid"], state["last_event_id"], state["xmin"], [str(k) for k in EVENT_KINDS], limit],
        ) if hooks else []
        events = len(rows)
        for row in rows:
            created += await _create_deliveries(conn, row, hooks)
        # A full page stops at its last event; a short one has read everything below xmin.
        cursor = (rows[-1]["txid"], rows[-1]["id"]) if len(rows) == limit else (state["xmin"], 0)
        await conn.execute_query(
            "UPDATE webhook_dispatch_state SET last_txid = $1::text::xid8, last_event_id = $2, ran_at = now() "
            "WHERE name = 'events'", list(cursor),
        )
    enqueued = await enqueue_due(jobs=jobs)
    return DispatchResult(events=events, deliveries=created, enqueued=enqueued)


async def _create_deliveries(conn: Any, row: dict[str, Any], hooks: list[Webhook]) -> int:
    # A webhook hears only what happened after it was created: a new hook is not flooded with history.
    targets = [h for h in hooks if row["kind"] in h.events and h.created_at <= row["at"]]
    if not targets:
        return 0
    body = json.dumps(event_payload(row), separators=(",", ":"), ensure_ascii=False)
    created = 0
    for hook in targets:
        inserted = await conn.execute_query_dict(
            "INSERT INTO webhook_deliveries (webhook_id, event_id, event_kind, body, next_attempt_at) "
            "VALUES ($1, $2, $3, $4, now()) ON CONFLICT (webhook_id, event_id) DO NOTHING RETURNING id",
            [hook.id, row["id"], row["kind"], body],
        )
        created += len(inserted)
    return created


def event_payload(row: dict[str, Any]) -> dict[str, Any]:
    """The JSON body a receiver gets: what happened, when, by whom, to which question (and swarm)."""
    payload: dict[str, Any] = {
        "id": str(row["id"]), "type": row["kind"], "created_at": row["at"].isoformat(),
        "actor": None if row["actor_id"] is None else {
            "id": row["actor_id"], "username": row["actor_username"], "role": row["actor_role"]},
    }
    if row["question_id"] is not None:
        payload["question"] = {
            "id": row["question_id"], "external_id": row["external_id"],
            # A question hidden by a moderator before dispatch: receivers get the placeholder, not its title.
            "title": HIDDEN_TEXT if row["question_hidden"] else row["title"], "hidden": row["question_hidden"],
            "status": row["question_status"], "tags": list(row["tags"] or []),
            "accepted_answer_id": row["accepted_answer_id"], "path": f"/questions/{row['question_id']}",
        }
    if row["answer_id"] is not None:
        payload["answer_id"] = row["answer_id"]
    if row["swarm_id"] is not None:
        payload["swarm"] = {"id": row["swarm_id"], "reason": row["swarm_reason"], "status": row["swarm_status"],
                            "path": f"/swarms/{row['swarm_id']}"}
    return payload


async def enqueue_due(*, jobs: JobQueue, at: datetime | None = None, limit: int = 1000) -> int:
    """Enqueues a delivery job for every pending delivery whose next attempt is due at `at` (default now)."""
    due = await WebhookDelivery.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=at or now()) \
        .order_by("next_attempt_at").limit(limit).values("id", "next_attempt_at")
    for row in due:
        await _enqueue(jobs, row["id"], row["next_attempt_at"])
    return len(due)


async def _enqueue(jobs: JobQueue, delivery_id: int, due: datetime) -> None:
    # The due time is part of the job id: a re-enqueue after a lease expired is a new job, while the
    # same attempt enqueued twice (two dispatchers, a slow worker) runs once.
    await jobs.enqueue(JobName.DELIVER_WEBHOOK, job_id=f"webhook-delivery:{delivery_id}:{due.timestamp():.0f}",
                       delivery_id=delivery_id)


# --- delivery: one attempt ------------------------------------------------------------------------


def sign(secret: str, body: bytes) -> str:
    """The `X-SupportSwarm-Signature` value: HMAC-SHA256 of the raw body with the webhook's secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff_s(attempts: int) -> int:
    """Seconds before the next try after `attempts` failed ones: 15 s, 30 s, 1 min, ... capped at 1 h."""
    return int(min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


_CLAIM_SQL = """
UPDATE webhook_deliveries d SET next_attempt_at = $2::timestamptz + make_interval(secs => $3)
FROM webhooks w
WHERE d.id = $1 AND w.id = d.webhook_id AND w.is_active AND d.status = 'pending' AND d.next_attempt_at <= $2
RETURNING d.attempts, d.body, d.event_id, d.event_kind, w.url, w.secret
"""


async def deliver(delivery_id: int, *, at: datetime | None = None) -> str:
    """One attempt at a due delivery; returns its status afterwards, or "skipped" when it was not due.

    The claim moves the next attempt a lease ahead first, so a second worker given the same
    delivery skips it, and a worker that dies mid-request is replaced once the lease runs out.
    """
    at = at or now()
    rows = await _db().execute_query_dict(_CLAIM_SQL, [delivery_id, at, float(LEASE_S)])
    if not rows:
        return "skipped"
    claim = rows[0]
    body = claim["body"].encode()
    headers = {
        "Content-Type": "application/json", "User-Agent": USER_AGENT,
        "X-SupportSwarm-Event": claim["event_kind"], "X-SupportSwarm-Event-Id": str(claim["event_id"]),
        "X-SupportSwarm-Delivery": str(delivery_id), "X-SupportSwarm-Timestamp": str(int(time.time())),
        "X-SupportSwarm-Signature": sign(claim["secret"], body),
    }
    result = await asyncio.to_thread(_post, claim["url"], body, headers, TIMEOUT_S)
    return await _record_attempt(delivery_id, claim["attempts"] + 1, result, at)


async def _record_attempt(delivery_id: int, number: int, result: AttemptResult, at: datetime) -> str:
    if result.ok:
        status, next_at = DeliveryStatus.DELIVERED, at
    elif number >= MAX_ATTEMPTS:
        status, next_at = DeliveryStatus.FAILED, at
    else:
        status, next_at = DeliveryStatus.PENDING, at + timedelta(seconds=backoff_s(number))
    try:
        async with in_transaction():
            await WebhookAttempt.create(delivery_id=delivery_id, number=number, at=at,
                                        status_code=result.status_code, error=result.error,
                                        duration_ms=result.duration_ms)
            await WebhookDelivery.filter(id=delivery_id).update(
                status=status, attempts=number, last_status_code=result.status_code, last_error=result.error,
                next_attempt_at=next_at, delivered_at=at if result.ok else None,
            )
    except IntegrityError:
        return "deleted"  # the webhook was deleted during the request, and its log with it
    return str(status)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not an instruction: following it would let a receiver aim us elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> AttemptResult:
    """Blocking POST (run in a thread). Only the status code is kept: response bodies are never stored."""
    started = time.monotonic()
    code: int | None = None
    error: str | None = None
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=timeout) as response:
            code = int(response.status)
    except urllib.error.HTTPError as exc:
        code = exc.code
        exc.close()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        error = f"{type(exc).__name__}: {reason}"[:300]
    if code is not None and not 200 <= code < 300:
        error = "redirects are not followed" if 300 <= code < 400 else f"HTTP {code}"
    return AttemptResult(code, error, int((time.monotonic() - started) * 1000))
