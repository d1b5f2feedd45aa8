"""The forum's story through HTTP: ask, answer, vote, accept, edit, duplicates, and bad input."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from supportswarm.accounts.models import User
from supportswarm.forum import services
from supportswarm.forum.models import Question
from supportswarm.metrics.models import Event
from tests.conftest import Actor

QUESTION = {"title": "My card payment was declined twice", "body": "At the grocery store, **twice**.",
            "tags": ["cards", "payments"]}


async def ask(actor: Actor, **overrides: Any) -> dict[str, Any]:
    """Creates a question directly through the service, so forum tests do not depend on routing."""
    from supportswarm.accounts.models import User

    user = await User.get(id=actor.user["id"])
    data = QUESTION | overrides
    question = await services.create_question(user, data["title"], data["body"], data["tags"], jobs=None)
    return {"id": question.id}


async def test_answer_vote_accept_story(client: httpx.AsyncClient, make_user: Any) -> None:
    asker, helper, voter = await make_user("asker"), await make_user("helper"), await make_user("voter")
    q = await ask(asker)
    answer = await helper.post(f"/api/v1/questions/{q['id']}/answers", {"body": "Call the bank to unblock it."})
    assert answer.status_code == 201
    answer_id = answer.json()["id"]

    up = await voter.post(f"/api/v1/answers/{answer_id}/vote", {"value": 1})
    assert up.json() == {"score": 1}
    again = await voter.post(f"/api/v1/answers/{answer_id}/vote", {"value": 1})
    assert again.json() == {"score": 1}, "one vote per user per post"

    stranger = await helper.post(f"/api/v1/answers/{answer_id}/accept")
    assert stranger.status_code == 403, "only the asker or staff can accept"
    accepted = await asker.post(f"/api/v1/answers/{answer_id}/accept")
    assert accepted.status_code == 200 and accepted.json()["status"] == "resolved"

    detail = (await client.get(f"/api/v1/questions/{q['id']}")).json()
    assert detail["status"] == "resolved" and detail["accepted_answer_id"] == answer_id
    assert detail["answers"][0]["is_accepted"] is True
    me = (await helper.get("/api/v1/me")).json()["user"]
    assert me["reputation"] == 1 + services.REP_ANSWER_UP + services.REP_ACCEPTED


async def test_staff_can_accept_for_the_asker(make_user: Any) -> None:
    asker, helper, staff = await make_user("asker"), await make_user("helper"), await make_user("sam", "staff")
    q = await ask(asker)
    answer = (await helper.post(f"/api/v1/questions/{q['id']}/answers", {"body": "Restart the app."})).json()
    assert (await staff.post(f"/api/v1/answers/{answer['id']}/accept")).status_code == 200


async def test_first_comments_at_once_log_one_first_response(make_user: Any) -> None:
    q = await ask(await make_user("asker"))
    helpers = [await User.get(id=(await make_user(f"helper{i}")).user["id"]) for i in range(8)]
    await asyncio.gather(*(services.post_comment(h, "Which card is it?", question_id=q["id"]) for h in helpers))
    assert await Event.filter(kind="first_response", question_id=q["id"]).count() == 1


async def test_votes_can_be_changed_and_withdrawn(make_user: Any) -> None:
    asker, voter, other = await make_user("asker"), await make_user("voter"), await make_user("other")
    q = await ask(asker)
    url = f"/api/v1/questions/{q['id']}/vote"
    assert (await voter.post(url, {"value": 1})).json() == {"score": 1}
    assert (await other.post(url, {"value": 1})).json() == {"score": 2}
    assert (await voter.post(url, {"value": -1})).json() == {"score": 0}
    assert (await voter.post(url, {"value": 0})).json() == {"score": 1}
    me = (await asker.get("/api/v1/me")).json()["user"]
    assert me["reputation"] == 1 + services.REP_QUESTION_UP


async def test_cannot_vote_on_own_post_and_value_is_checked(make_user: Any) -> None:
    asker = await make_user("asker")
    q = await ask(asker)
    own = await asker.post(f"/api/v1/questions/{q['id']}/vote", {"value": 1})
    assert own.status_code == 403
    other = await make_user("other")
    bad = await other.post(f"/api/v1/questions/{q['id']}/vote", {"value": 5})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "value"


async def test_edit_keeps_revision_history_with_diff(client: httpx.AsyncClient, make_user: Any) -> None:
    asker = await make_user("asker")
    q = await ask(asker)
    edit = await asker.patch(f"/api/v1/questions/{q['id']}", {"title": "My card payment was declined three times",
                                                               "body": "Now it happened again.", "tags": ["cards"]})
    assert edit.status_code == 200
    history = (await client.get(f"/api/v1/questions/{q['id']}/revisions")).json()["revisions"]
    assert [r["number"] for r in history] == [2, 1]
    assert any(line.startswith("+My card payment was declined three times") for line in history[0]["diff"])
    page = await client.get(f"/questions/{q['id']}/revisions")
    assert page.status_code == 200 and "declined three times" in page.text
    other = await make_user("other")
    assert (await other.patch(f"/api/v1/questions/{q['id']}", {"title": "Hijacked title here", "body": "x"})) \
        .status_code == 403


async def test_wiki_answers_are_editable_by_trusted_users_only(make_user: Any) -> None:
    asker, author, expert = await make_user("asker"), await make_user("author"), await make_user("eve", "expert")
    q = await ask(asker)
    wiki = (await author.post(f"/api/v1/questions/{q['id']}/answers", {"body": "Step one: ...", "wiki": True})).json()
    plain = (await author.post(f"/api/v1/questions/{q['id']}/answers", {"body": "Another idea"})).json()
    assert (await expert.patch(f"/api/v1/answers/{wiki['id']}", {"body": "Step one, clearer"})).status_code == 200
    assert (await expert.patch(f"/api/v1/answers/{plain['id']}", {"body": "Mine now"})).status_code == 403
    assert (await asker.patch(f"/api/v1/answers/{wiki['id']}", {"body": "low rep edit"})).status_code == 403


async def test_duplicate_is_a_link_not_a_deletion(client: httpx.AsyncClient, make_user: Any) -> None:
    asker, staff = await make_user("asker"), await make_user("sam", "staff")
    original, dup = await ask(asker), await ask(asker, title="Card declined at the store again")
    assert (await asker.post(f"/api/v1/questions/{dup['id']}/duplicate", {"duplicate_of": original["id"]})) \
        .status_code == 403
    done = await staff.post(f"/api/v1/questions/{dup['id']}/duplicate", {"duplicate_of": original["id"]})
    assert done.status_code == 200 and done.json()["status"] == "duplicate"
    assert done.json()["duplicate_of_id"] == original["id"]
    page = await client.get(f"/questions/{dup['id']}")
    assert f'href="/questions/{original["id"]}"' in page.text
    assert await Question.filter(id=dup["id"]).exists()
    circle = await staff.post(f"/api/v1/questions/{original['id']}/duplicate", {"duplicate_of": dup["id"]})
    assert circle.status_code == 400


async def test_list_filters_and_pagination(client: httpx.AsyncClient, make_user: Any) -> None:
    asker, helper = await make_user("asker"), await make_user("helper")
    ids = [(await ask(asker, title=f"Question number {i} about transfers", tags=["transfers"]))["id"]
           for i in range(23)]
    answer = (await helper.post(f"/api/v1/questions/{ids[0]}/answers", {"body": "Here is how."})).json()
    await asker.post(f"/api/v1/answers/{answer['id']}/accept")
    first = (await client.get("/api/v1/questions?page=1")).json()
    assert first["total"] == 23 and len(first["items"]) == 20 and first["page"] == 1
    second = (await client.get("/api/v1/questions?page=2")).json()
    assert len(second["items"]) == 3
    resolved = (await client.get("/api/v1/questions?status=resolved")).json()
    assert [i["id"] for i in resolved["items"]] == [ids[0]]
    unanswered = (await client.get("/api/v1/questions?status=unanswered")).json()
    assert unanswered["total"] == 22
    tagged = (await client.get("/api/v1/questions?tag=transfers")).json()
    assert tagged["total"] == 23
    assert (await client.get("/api/v1/questions?tag=nothing")).json()["total"] == 0
    html = await client.get("/?status=resolved")
    assert "Question number 0 about transfers" in html.text


@pytest.mark.parametrize(
    ("url", "payload", "status", "field"),
    [
        ("/api/v1/questions/{id}/answers", {}, 400, "body"),
        ("/api/v1/questions/{id}/answers", {"body": ""}, 400, "body"),
        ("/api/v1/questions/{id}/answers", {"body": "x" * 30_001}, 400, "body"),
        ("/api/v1/questions/{id}/answers", {"body": ["list"]}, 400, "body"),
        ("/api/v1/questions/999999/answers", {"body": "valid answer"}, 404, None),
        ("/api/v1/questions/99999999999999/answers", {"body": "valid answer"}, 404, None),
        ("/api/v1/answers/424242/accept", {}, 404, None),
        ("/api/v1/questions/{id}/comments", {"body": "y" * 700}, 400, "body"),
        ("/api/v1/questions/{id}/duplicate", {"duplicate_of": "abc"}, 400, "duplicate_of"),
    ],
)
async def test_bad_input_gets_a_clear_4xx(
    make_user: Any, url: str, payload: dict[str, Any], status: int, field: str | None
) -> None:
    asker, staff = await make_user("asker"), await make_user("sam", "staff")
    q = await ask(asker)
    response = await staff.post(url.format(id=q["id"]), payload)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] and error["detail"]
    if field:
        assert error["field"] == field
    detail = await services.question_detail(q["id"])
    assert detail["answers"] == [] and detail["status"] == "open"


async def test_anonymous_cannot_write(client: httpx.AsyncClient, make_user: Any) -> None:
    q = await ask(await make_user("asker"))
    response = await client.post(f"/api/v1/questions/{q['id']}/answers", json={"body": "anonymous"})
    assert response.status_code == 401


async def test_pages_render_and_unknown_pages_are_readable_404s(client: httpx.AsyncClient, make_user: Any) -> None:
    q = await ask(await make_user("asker"))
    page = await client.get(f"/questions/{q['id']}")
    assert page.status_code == 200 and "<strong>twice</strong>" in page.text
    missing = await client.get("/questions/424242")
    assert missing.status_code == 404 and "could not find" in missing.text
    api_missing = await client.get("/api/v1/nothing-here")
    assert api_missing.status_code == 404 and api_missing.json()["error"]["code"] == "not_found"
