"""Outgoing webhooks end to end: the event log as outbox, signed delivery to a real HTTP receiver, retries."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import asyncpg
import httpx

from supportswarm.accounts.models import User
from supportswarm.db import ConnectionParams
from supportswarm.forum import services as forum
from supportswarm.jobs import JobName
from supportswarm.resources import Resources
from supportswarm.webhooks import services
from supportswarm.webhooks.models import WebhookDelivery
from tests.conftest import Actor
from tests.webhooks.conftest import Receiver

TITLE = "Card payment declined abroad"
BODY = "My card was declined in a shop while travelling, what can I do?"


async def _hook(admin: Actor, receiver: Receiver, events: list[str] | None = None) -> dict[str, Any]:
    response = await admin.post("/api/v1/webhooks", {"url": receiver.url, "events": events or [],
                                                     "description": "ticket system"})
    assert response.status_code == 201, response.text
    hook: dict[str, Any] = response.json()
    receiver.secret = hook["secret"]
    return hook


async def _ask(actor: Actor, title: str = TITLE) -> int:
    user = await User.get(id=actor.user["id"])
    question = await forum.create_question(user, title, BODY, ["cards"], jobs=None)
    return question.id


async def _dispatch(resources: Resources) -> services.DispatchResult:
    result = await services.dispatch_events(jobs=resources.jobs)
    await resources.jobs.drain()
    return result


async def _log(admin: Actor, hook_id: int) -> dict[str, Any]:
    response = await admin.get(f"/api/v1/webhooks/{hook_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def test_failed_delivery_is_retried_with_backoff_and_logged(
    make_user: Any, resources: Resources, receiver: Receiver
) -> None:
    admin, alice = await make_user("root", "admin"), await make_user("alice")
    hook = await _hook(admin, receiver)
    receiver.script = [500]
    question_id = await _ask(alice)

    first = await _dispatch(resources)

    assert (first.events, first.deliveries) == (1, 1)
    assert len(receiver.requests) == 1 and receiver.requests[0].signature_ok
    log = await _log(admin, hook["id"])
    delivery = log["deliveries"][0]
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("pending", 1, 500)
    assert [a["status_code"] for a in delivery["log"]] == [500]
    row = await WebhookDelivery.get(id=delivery["id"])
    assert row.next_attempt_at - row.created_at >= timedelta(seconds=services.backoff_s(1) - 1)

    # Not due yet: the dispatcher enqueues nothing and the receiver hears nothing more.
    assert (await _dispatch(resources)).enqueued == 0
    assert len(receiver.requests) == 1
    # Once due, the retry sends the same signed bytes and succeeds.
    assert await services.deliver(delivery["id"], at=row.next_attempt_at) == "delivered"

    first_try, retry = receiver.requests
    assert retry.signature_ok and retry.body == first_try.body
    assert retry.headers["x-supportswarm-event-id"] == first_try.headers["x-supportswarm-event-id"]
    assert retry.headers["x-supportswarm-event"] == "question_asked"
    assert retry.headers["x-supportswarm-timestamp"].isdigit()
    payload = json.loads(retry.body)
    assert payload["type"] == "question_asked"
    assert payload["question"]["id"] == question_id and payload["question"]["title"] == TITLE
    assert payload["question"]["tags"] == ["cards"] and payload["actor"]["username"] == "alice"
    log = await _log(admin, hook["id"])
    delivery = log["deliveries"][0]
    assert (delivery["status"], delivery["attempts"], delivery["next_attempt_at"]) == ("delivered", 2, None)
    assert [a["status_code"] for a in delivery["log"]] == [500, 200]
    page = await admin.get(f"/admin/webhooks/{hook['id']}")
    assert page.status_code == 200
    assert "wh-status-delivered" in page.text and "HTTP 500" in page.text and hook["secret"] in page.text


async def test_question_resolved_and_kind_filter(make_user: Any, resources: Resources, receiver: Receiver) -> None:
    admin, alice, bob = await make_user("root", "admin"), await make_user("alice"), await make_user("bobby")
    hook = await _hook(admin, receiver, ["question_resolved"])
    question_id = await _ask(alice)
    answer = await forum.post_answer(await User.get(id=bob.user["id"]), question_id, "Call the bank and unblock it.")
    await forum.accept_answer(await User.get(id=alice.user["id"]), answer.id)

    await _dispatch(resources)

    assert [json.loads(r.body)["type"] for r in receiver.requests] == ["question_resolved"]
    payload = json.loads(receiver.requests[0].body)
    assert payload["answer_id"] == answer.id and payload["question"]["status"] == "resolved"
    assert (await _log(admin, hook["id"]))["deliveries"][0]["status"] == "delivered"


async def test_events_before_the_webhook_existed_are_not_sent(
    make_user: Any, resources: Resources, receiver: Receiver
) -> None:
    admin, alice = await make_user("root", "admin"), await make_user("alice")
    await _ask(alice, "An old question from before the hook")
    hook = await _hook(admin, receiver)
    await _ask(alice, "A new question after the hook")

    await _dispatch(resources)
    await _dispatch(resources)  # dispatching again finds nothing new

    assert [json.loads(r.body)["question"]["title"] for r in receiver.requests] == ["A new question after the hook"]
    assert (await _log(admin, hook["id"]))["total"] == 1


async def test_an_event_committed_late_is_not_skipped(
    make_user: Any, resources: Resources, receiver: Receiver, pg_params: ConnectionParams
) -> None:
    admin, alice = await make_user("root", "admin"), await make_user("alice")
    await _hook(admin, receiver)
    early = await _ask(alice, "Asked first, committed last")
    await _dispatch(resources)
    assert len(receiver.requests) == 1
    conn = await asyncpg.connect(pg_params.url())
    try:
        tx = conn.transaction()
        await tx.start()
        # An event written by a transaction that stays open while a later one commits and is dispatched.
        await conn.execute("INSERT INTO events (kind, question_id, at) VALUES ('question_asked', $1, now())", early)
        await _ask(alice, "Asked second, committed first")
        await _dispatch(resources)
        assert len(receiver.requests) == 1  # held back: an older transaction is still open
        await tx.commit()
    finally:
        await conn.close()

    await _dispatch(resources)

    titles = sorted(json.loads(r.body)["question"]["title"] for r in receiver.requests)
    assert titles == ["Asked first, committed last", "Asked first, committed last", "Asked second, committed first"]


async def test_gives_up_after_max_attempts_and_redirects_are_not_followed(
    make_user: Any, resources: Resources, receiver: Receiver
) -> None:
    admin, alice = await make_user("root", "admin"), await make_user("alice")
    hook = await _hook(admin, receiver)
    receiver.script = [302] + [503] * (services.MAX_ATTEMPTS - 1)
    await _ask(alice)
    await _dispatch(resources)
    delivery_id = (await _log(admin, hook["id"]))["deliveries"][0]["id"]

    outcomes = []
    for _ in range(services.MAX_ATTEMPTS - 1):
        due = (await WebhookDelivery.get(id=delivery_id)).next_attempt_at
        outcomes.append(await services.deliver(delivery_id, at=due))

    assert outcomes == ["pending"] * (services.MAX_ATTEMPTS - 2) + ["failed"]
    delivery = (await _log(admin, hook["id"]))["deliveries"][0]
    assert delivery["attempts"] == services.MAX_ATTEMPTS and delivery["status"] == "failed"
    assert delivery["log"][0]["error"] == "redirects are not followed"
    assert len(receiver.requests) == services.MAX_ATTEMPTS  # the redirect target was never contacted

    response = await admin.post(f"/api/v1/webhooks/deliveries/{delivery_id}/redeliver")
    assert response.status_code == 202
    await resources.jobs.drain()
    assert (await WebhookDelivery.get(id=delivery_id)).status == "delivered"


class RecordingQueue:
    """A job queue that only notes what was enqueued: the test runs the delivery itself."""

    def __init__(self) -> None:
        self.enqueued: list[dict[str, Any]] = []

    async def enqueue(self, name: JobName, *, job_id: str | None = None, **kwargs: Any) -> None:
        self.enqueued.append({"name": name, "job_id": job_id, **kwargs})

    async def drain(self) -> None:
        return None

    async def close(self) -> None:
        return None


async def test_a_webhook_deleted_during_a_delivery_ends_it_quietly(make_user: Any, receiver: Receiver) -> None:
    admin, alice = await make_user("root", "admin"), await make_user("alice")
    hook = await _hook(admin, receiver)
    await _ask(alice)
    queue = RecordingQueue()
    await services.dispatch_events(jobs=queue)
    [job] = queue.enqueued
    assert job["name"] == JobName.DELIVER_WEBHOOK
    assert job["job_id"].startswith(f"webhook-delivery:{job['delivery_id']}:")
    receiver.on_request = lambda: services.delete_webhook(hook["id"])

    assert await services.deliver(job["delivery_id"]) == "deleted"
    assert await services.deliver(job["delivery_id"]) == "skipped"
    assert len(receiver.requests) == 1 and not await WebhookDelivery.all().exists()


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [services.backoff_s(n) for n in (1, 2, 3)] == [15, 30, 60]
    assert services.backoff_s(30) == services.BACKOFF_CAP_S


async def test_only_admins_manage_webhooks(make_user: Any, client: httpx.AsyncClient) -> None:
    staff = await make_user("helper", "staff")
    assert (await staff.get("/api/v1/webhooks")).status_code == 403
    assert (await staff.post("/api/v1/webhooks", {"url": "https://example.com/h"})).status_code == 403
    assert (await client.get("/api/v1/webhooks")).status_code == 401
    assert (await staff.get("/admin/webhooks")).status_code == 403


async def test_bad_input_names_the_field(make_user: Any) -> None:
    admin = await make_user("root", "admin")
    cases = [
        ({"url": "file:///etc/passwd"}, "url"),
        ({"url": "gopher://127.0.0.1:6379/_FLUSHALL"}, "url"),
        ({"url": "https://"}, "url"),
        ({"url": "https://example.com:http/"}, "url"),
        ({}, "url"),
        ({"url": "https://example.com/h", "events": ["answer_posted"]}, "events"),
        ({"url": "https://example.com/h", "events": "question_asked"}, None),
        ({"url": "https://example.com/h", "description": 5}, "description"),
    ]
    for body, field in cases:
        response = await admin.post("/api/v1/webhooks", body)
        if field is None:
            assert response.status_code == 201 and response.json()["events"] == ["question_asked"]
        else:
            assert response.status_code == 400, body
            assert response.json()["error"]["field"] == field, body
    assert (await admin.get("/api/v1/webhooks/999")).status_code == 404
    assert (await admin.client.delete("/api/v1/webhooks/999", headers=admin.headers)).status_code == 404


async def test_admin_pages_create_show_and_delete(make_user: Any, receiver: Receiver) -> None:
    admin = await make_user("root", "admin")
    created = await admin.client.post("/admin/webhooks", headers=admin.headers, data={
        "url": receiver.url, "description": "chat bridge", "event_swarm_opened": "on"})
    assert created.status_code == 303
    detail_url = created.headers["location"]

    page = await admin.get(detail_url)
    assert page.status_code == 200
    assert receiver.url in page.text and "swarm_opened" in page.text and "Delivery log" in page.text
    listing = await admin.get("/admin/webhooks")
    assert "chat bridge" in listing.text
    bad = await admin.client.post("/admin/webhooks", headers=admin.headers, data={"url": "ftp://x"})
    assert bad.status_code == 400 and "http://" in bad.text

    hook_id = int(detail_url.rsplit("/", 1)[1])
    deleted = await admin.client.post(f"/admin/webhooks/{hook_id}/delete", headers=admin.headers)
    assert deleted.status_code == 303
    assert (await admin.get("/api/v1/webhooks")).json()["items"] == []
