"""Flagging and the moderation queue, through the HTTP API with real users (and the pages where it shows)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from embeddings import HashingEmbedder
from supportswarm.accounts import services as accounts
from supportswarm.accounts.models import User
from supportswarm.app import create_app
from supportswarm.db import ConnectionParams
from supportswarm.errors import Conflict
from supportswarm.export import export_forum
from supportswarm.forum import services as forum
from supportswarm.metrics.models import Event
from supportswarm.moderation.services import REP_PENALTY
from supportswarm.moderation.visibility import HIDDEN_TEXT
from supportswarm.ratelimit import LIMITS, Limit
from supportswarm.resources import Resources
from supportswarm.settings import Settings
from supportswarm.swarm import services as swarms
from supportswarm.webhooks import services as webhooks
from supportswarm.webhooks.models import WebhookDelivery
from tests.conftest import Actor
from tests.security.scene import NoJobs
from workers.registry import JOB_FUNCTIONS

TITLE = "Buy cheap watches at my website now"
BODY = "Visit totally-legit-watches dot example for the best prices"


async def _question(author: Actor, title: str = TITLE, body: str = BODY) -> int:
    response = await author.post("/api/v1/questions", {"title": title, "body": body, "tags": ["spam"],
                                                       "force": True})
    assert response.status_code == 201, response.text
    return int(response.json()["question"]["id"])


async def _flag(actor: Actor, url: str, reason: str = "spam", detail: str = "") -> Any:
    return await actor.post(url, {"reason": reason, "detail": detail})


async def _queue(staff: Actor, status: str = "pending") -> list[dict[str, Any]]:
    response = await staff.get(f"/api/v1/flags?status={status}")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _reputation(actor: Actor) -> int:
    return (await User.get(id=actor.user["id"])).reputation


async def _listed(actor: Actor, question_id: int) -> bool:
    response = await actor.get("/api/v1/questions")
    return question_id in [q["id"] for q in response.json()["items"]]


async def test_flag_queue_hide_then_restore(make_user: Any) -> None:
    spammer, maria, sofia, dana = (await make_user("spammer"), await make_user("maria"), await make_user("sofia"),
                                   await make_user("dana", "staff"))
    await User.filter(id=spammer.user["id"]).update(reputation=500)
    qid = await _question(spammer)
    url = f"/api/v1/questions/{qid}/flag"
    first = await _flag(maria, url, "spam")
    assert first.status_code == 201 and first.json()["hidden"] is False
    assert (await _flag(sofia, url, "needs_attention", "a link farm, see the body")).status_code == 201

    [group] = await _queue(dana)
    assert (group["post"]["kind"], group["post"]["id"], group["post"]["author"]) == ("question", qid, "spammer")
    assert group["post"]["body"] == BODY and group["count"] == 2
    assert group["reasons"] == {"spam": 1, "needs_attention": 1}
    assert [f["detail"] for f in group["flags"]] == ["", "a link farm, see the body"]

    hidden = await dana.post(f"/api/v1/flags/{group['flags'][0]['id']}/resolve", {"action": "hide"})
    assert hidden.status_code == 200, hidden.text
    assert hidden.json()["post"]["hidden"] is True and await _queue(dana) == []
    assert await _reputation(spammer) == 500 - REP_PENALTY

    for viewer in (maria, spammer):  # members, the author included, see the placeholder only
        detail = (await viewer.get(f"/api/v1/questions/{qid}")).json()
        assert (detail["title"], detail["body"], detail["hidden"]) == (HIDDEN_TEXT, HIDDEN_TEXT, True)
        assert not await _listed(viewer, qid)
        assert (await viewer.get(f"/api/v1/questions/{qid}/revisions")).status_code == 404
    page = await maria.client.get(f"/questions/{qid}", headers=maria.headers)
    assert page.status_code == 200 and "watches" not in page.text and HIDDEN_TEXT in page.text
    assert "watches" not in (await maria.client.get(f"/questions/{qid}/revisions")).text

    staff_view = (await dana.get(f"/api/v1/questions/{qid}")).json()
    assert (staff_view["title"], staff_view["body"], staff_view["hidden"]) == (TITLE, BODY, True)
    assert (await dana.get(f"/api/v1/questions/{qid}/revisions")).json()["revisions"][0]["body"] == BODY
    staff_page = await dana.client.get(f"/questions/{qid}", headers=dana.headers)
    assert "watches" in staff_page.text and "only staff see this text" in staff_page.text
    [agreed] = await _queue(dana, "agreed")
    assert agreed["post"]["id"] == qid and {f["status"] for f in agreed["flags"]} == {"agreed"}

    restored = await dana.post(f"/api/v1/flags/{agreed['flags'][0]['id']}/resolve", {"action": "restore"})
    assert restored.status_code == 200 and restored.json()["post"]["hidden"] is False
    assert (await maria.get(f"/api/v1/questions/{qid}")).json()["body"] == BODY
    assert await _listed(maria, qid)
    assert await _reputation(spammer) == 500  # the penalty is refunded with the restore
    again = await dana.post(f"/api/v1/flags/{agreed['flags'][0]['id']}/resolve", {"action": "restore"})
    assert again.status_code == 409
    kinds = await Event.filter(question_id=qid, kind__startswith="post_").order_by("id").values_list("kind", flat=True)
    assert kinds == ["post_flagged", "post_flagged", "post_hidden", "post_restored"]


async def test_enough_spam_flags_hide_pending_review_and_dismiss_shows_again(make_user: Any) -> None:
    author, dana = await make_user("author"), await make_user("dana", "staff")
    flaggers = [await make_user(f"member{i}") for i in range(3)]
    await User.filter(id=author.user["id"]).update(reputation=300)
    qid = await _question(author)
    answer = await flaggers[0].post(f"/api/v1/questions/{qid}/answers", {"body": "Please do not post ads here."})
    aid = answer.json()["id"]
    hidden = [(await _flag(m, f"/api/v1/questions/{qid}/flag", "rude" if i else "spam")).json()["hidden"]
              for i, m in enumerate(flaggers)]
    assert hidden == [False, False, True]  # the default SUPPORTSWARM_FLAGS_TO_HIDE is 3
    assert not await _listed(flaggers[0], qid)
    assert (await flaggers[0].get(f"/api/v1/questions/{qid}")).json()["body"] == HIDDEN_TEXT
    assert await _reputation(author) == 300  # hidden pending review: no penalty until a moderator agrees
    off_topic = await _flag(flaggers[1], f"/api/v1/answers/{aid}/flag", "off_topic")
    assert off_topic.json()["hidden"] is False  # off-topic flags never hide by themselves

    groups = {g["post"]["kind"]: g for g in await _queue(dana)}
    assert groups["question"]["post"]["auto_hidden"] is True and groups["question"]["count"] == 3
    page = await dana.client.get("/admin/flags", headers=dana.headers)
    assert page.status_code == 200 and "hidden pending review" in page.text and "watches" in page.text

    flag_id = groups["question"]["flags"][0]["id"]
    assert (await dana.post(f"/api/v1/flags/{flag_id}/resolve", {"action": "dismiss"})).status_code == 200
    assert await _listed(flaggers[0], qid)
    assert (await flaggers[0].get(f"/api/v1/questions/{qid}")).json()["body"] == BODY
    assert [f["status"] for f in (await _queue(dana, "declined"))[0]["flags"]] == ["declined"] * 3
    assert await _reputation(author) == 300


async def test_one_open_flag_per_member_and_never_on_your_own_post(make_user: Any) -> None:
    author, maria, dana = await make_user("author"), await make_user("maria"), await make_user("dana", "staff")
    qid = await _question(author)
    url = f"/api/v1/questions/{qid}/flag"
    assert (await _flag(maria, url)).status_code == 201
    twice = await _flag(maria, url, "rude")
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "already_flagged"
    own = await _flag(author, url)
    assert own.status_code == 403 and own.json()["error"]["code"] == "forbidden"
    [group] = await _queue(dana)
    assert group["count"] == 1
    await dana.post(f"/api/v1/flags/{group['flags'][0]['id']}/resolve", {"action": "dismiss"})
    assert (await _flag(maria, url)).status_code == 201  # a settled flag does not block a new one


async def test_bad_input_is_400_and_strangers_are_refused(make_user: Any, client: Any) -> None:
    author, maria, dana = await make_user("author"), await make_user("maria"), await make_user("dana", "staff")
    qid = await _question(author)
    url = f"/api/v1/questions/{qid}/flag"
    for body, field in [({"reason": "boring"}, "reason"), ({}, "reason"), ({"reason": 1}, "reason"),
                        ({"reason": "needs_attention"}, "detail"), ({"reason": "needs_attention", "detail": "  "},
                                                                    "detail"),
                        ({"reason": "spam", "detail": "x" * 501}, "detail"),
                        ({"reason": "spam", "detail": "nul \x00"}, "detail"), ({"reason": "spam", "detail": 5},
                                                                              "detail")]:
        response = await maria.post(url, body)
        assert (response.status_code, response.json()["error"].get("field")) == (400, field), body
    assert (await maria.post("/api/v1/questions/999999/flag", {"reason": "spam"})).status_code == 404
    assert (await client.post(url, json={"reason": "spam"})).status_code == 401
    assert (await _flag(maria, url)).status_code == 201
    [group] = await _queue(dana)
    resolve = f"/api/v1/flags/{group['flags'][0]['id']}/resolve"
    bad = await dana.post(resolve, {"action": "delete"})
    assert (bad.status_code, bad.json()["error"]["field"]) == (400, "action")
    assert (await dana.get("/api/v1/flags?status=open")).status_code == 400
    assert (await dana.post("/api/v1/flags/999999/resolve", {"action": "hide"})).status_code == 404
    for stranger in (maria, author):
        assert (await stranger.get("/api/v1/flags")).status_code == 403
        assert (await stranger.post(resolve, {"action": "dismiss"})).status_code == 403
        assert (await stranger.client.get("/admin/flags", headers=stranger.headers)).status_code == 403
    assert (await _queue(dana))[0]["count"] == 1  # nothing was settled by the refused calls


async def test_hidden_answer_and_comment_are_masked_in_the_thread(make_user: Any) -> None:
    asker, rude, dana = await make_user("asker"), await make_user("rude"), await make_user("dana", "staff")
    qid = await _question(asker, "My router keeps dropping the line", "It drops every hour or so.")
    aid = (await rude.post(f"/api/v1/questions/{qid}/answers", {"body": "You are an idiot, read the manual"})
           ).json()["id"]
    cid = (await rude.post(f"/api/v1/questions/{qid}/comments", {"body": "What a stupid question"})).json()["id"]
    for url in (f"/api/v1/answers/{aid}/flag", f"/api/v1/comments/{cid}/flag"):
        assert (await _flag(asker, url, "rude")).status_code == 201
    for group in await _queue(dana):
        assert (await dana.post(f"/api/v1/flags/{group['flags'][0]['id']}/resolve", {"action": "hide"})
                ).status_code == 200
    detail = (await asker.get(f"/api/v1/questions/{qid}")).json()
    assert (detail["answers"][0]["body"], detail["answers"][0]["hidden"]) == (HIDDEN_TEXT, True)
    assert (detail["comments"][0]["body"], detail["comments"][0]["hidden"]) == (HIDDEN_TEXT, True)
    assert detail["hidden"] is False and detail["body"] == "It drops every hour or so."
    page = await asker.client.get(f"/questions/{qid}", headers=asker.headers)
    assert "idiot" not in page.text and "stupid" not in page.text
    # flag buttons (shown by flags.js) on others' posts only, and the one dialog they open
    assert f'data-flag-url="/api/v1/answers/{aid}/flag"' in page.text and 'id="flag-dialog"' in page.text
    assert f'data-flag-url="/api/v1/questions/{qid}/flag"' not in page.text
    assert (await asker.get(f"/api/v1/answers/{aid}/revisions")).status_code == 404
    staff = (await dana.get(f"/api/v1/questions/{qid}")).json()
    assert staff["answers"][0]["body"] == "You are an idiot, read the manual"
    assert staff["comments"][0]["body"] == "What a stupid question"


async def test_room_message_flagged_by_a_member_and_hidden(make_user: Any, resources: Resources) -> None:
    asker, helper = await make_user("asker"), await make_user("helper", "expert")
    outsider, dana = await make_user("outsider"), await make_user("dana", "staff")
    qid = await _question(asker, "Card declined at every shop", "Since this morning my card fails.")
    swarm = await swarms.open_swarm(qid, opened_by=None, reason="manual", broker=resources.broker, jobs=NoJobs())
    await swarms.post_message(swarm.id, await User.get(id=helper.user["id"]), "go away you fool", "m1",
                              broker=resources.broker, jobs=NoJobs())
    url = f"/api/v1/swarms/{swarm.id}/messages/1/flag"
    assert (await _flag(outsider, url, "rude")).status_code == 403  # a live room: members only
    assert (await _flag(asker, f"/api/v1/swarms/{swarm.id}/messages/2/flag", "rude")).status_code == 404
    assert (await _flag(asker, url, "rude")).status_code == 201
    [group] = await _queue(dana)
    assert (group["post"]["kind"], group["post"]["seq"], group["post"]["url"]) == (
        "message", 1, f"/swarms/{swarm.id}#msg-1")
    await dana.post(f"/api/v1/flags/{group['flags'][0]['id']}/resolve", {"action": "hide"})
    transcript = (await asker.get(f"/api/v1/swarms/{swarm.id}")).json()["messages"]
    assert [m["body"] for m in transcript] == [HIDDEN_TEXT]
    assert await _reputation(helper) == 1  # -100, floored at 1 as every reputation loss is
    with pytest.raises(Conflict):  # hidden text must not come back as the question's accepted answer
        await swarms.resolve_swarm(swarm.id, await User.get(id=dana.user["id"]), 1, broker=resources.broker,
                                   expert_reputation=1000)
    assert (await swarms.get_swarm(swarm.id)).status == "open"


async def test_webhooks_and_export_do_not_leak_a_hidden_question(make_user: Any, resources: Resources,
                                                                  pg_params: ConnectionParams, tmp_path: Path) -> None:
    admin, author, dana = await make_user("root", "admin"), await make_user("author"), await make_user("dana", "staff")
    hook = await admin.post("/api/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["question_asked"]})
    qid = await _question(author)
    await _flag(admin, f"/api/v1/questions/{qid}/flag")
    [group] = await _queue(dana)
    await dana.post(f"/api/v1/flags/{group['flags'][0]['id']}/resolve", {"action": "hide"})
    await webhooks.dispatch_events(jobs=NoJobs())
    delivery = await WebhookDelivery.filter(webhook_id=hook.json()["id"]).get()
    payload = json.loads(delivery.body)
    assert payload["question"]["title"] == HIDDEN_TEXT and payload["question"]["hidden"] is True
    assert "watches" not in delivery.body

    path = tmp_path / "export.jsonl"
    await export_forum(pg_params, path)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    [question] = [r for r in records if r["type"] == "question"]
    assert question["hidden_at"] is not None and question["hidden_by_id"] == dana.user["id"]


async def test_flags_are_rate_limited_per_member(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(LIMITS, "flag", Limit(2, 600))
    limited = create_app(replace(settings, rate_limits=True), job_functions=JOB_FUNCTIONS, embedder=HashingEmbedder())
    async with LifespanManager(limited) as manager, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://testserver") as client:
        author = await accounts.register("author", "correct horse battery")
        member = await accounts.register("member", "correct horse battery")
        headers = {"Authorization": f"Bearer {await accounts.create_token(member)}"}
        questions = [await forum.create_question(author, f"Question number {i} here", "", [], jobs=None)
                     for i in range(3)]
        statuses = [(await client.post(f"/api/v1/questions/{q.id}/flag", json={"reason": "spam"},
                                       headers=headers)).status_code for q in questions]
    assert statuses == [201, 201, 429]


async def test_a_restore_refunds_what_the_penalty_took_at_the_reputation_floor(make_user: Any) -> None:
    author, maria, dana = await make_user("author"), await make_user("maria"), await make_user("dana", "staff")
    await User.filter(id=author.user["id"]).update(reputation=30)
    qid = await _question(author)
    await _flag(maria, f"/api/v1/questions/{qid}/flag", "spam")
    [group] = await _queue(dana)
    await dana.post(f"/api/v1/flags/{group['flags'][0]['id']}/resolve", {"action": "hide"})
    assert await _reputation(author) == 1  # 29 taken, not 100
    await dana.post(f"/api/v1/flags/{group['flags'][0]['id']}/resolve", {"action": "restore"})
    assert await _reputation(author) == 30, "the refund gives back what was taken, no more"
