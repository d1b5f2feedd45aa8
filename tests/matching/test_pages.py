"""The ask page, the suggestion offer and the possible-duplicates panel, driven like a browser (forms +
session cookie + CSRF). Plumbing only, so the deterministic embedder: identical text is a sure match."""

from __future__ import annotations

import re
from typing import Any

import httpx

from supportswarm.forum.models import Question, QuestionStatus
from supportswarm.matching.models import Suggestion, SuggestionOutcome
from tests.matching.conftest import Forum

PASSWORD = "correct horse battery"


async def log_in(client: httpx.AsyncClient, make_user: Any, name: str, role: str = "customer") -> str:
    """Logs the client in with a session cookie; returns the CSRF token the pages embed."""
    await make_user(name, role)
    response = await client.post("/login", data={"username": name, "password": PASSWORD})
    assert response.status_code == 303
    return csrf_of(await client.get("/ask"))


def csrf_of(page: httpx.Response) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
    assert match, "logged-in pages carry the CSRF token"
    return match.group(1)


async def test_ask_page_works_without_an_account(client: httpx.AsyncClient) -> None:
    page = await client.get("/ask")
    assert page.status_code == 200
    assert 'id="ask-title"' in page.text and 'id="suggest-list"' in page.text
    assert "/static/js/ask.js" in page.text and "Log in</a> or" in page.text
    script = await client.get("/static/js/ask.js")
    assert script.status_code == 200 and "/api/v1/similar" in script.text


async def test_a_sure_match_is_offered_and_accepted(client: httpx.AsyncClient, make_user: Any,
                                                    forum_content: Forum) -> None:
    solved = await forum_content.answered("Card declined at the supermarket", "Unfreeze the card in the app.")
    await forum_content.settle()
    csrf = await log_in(client, make_user, "maria")
    sent = await client.post("/ask", data={"csrf_token": csrf, "title": "Card declined at the supermarket",
                                           "body": "", "tags": "cards"})
    assert sent.status_code == 303 and sent.headers["location"].startswith("/ask/suggestions/")
    offer = await client.get(sent.headers["location"])
    assert offer.status_code == 200
    assert "Unfreeze the card in the app." in offer.text and "This solved my problem" in offer.text
    suggestion_id = int(sent.headers["location"].rsplit("/", 1)[1])
    done = await client.post(f"/suggestions/{suggestion_id}/accept", data={"csrf_token": csrf})
    assert done.status_code == 303
    thanks = await client.get(done.headers["location"])
    assert "Glad that solved it" in thanks.text and f"/questions/{solved.question_id}#answer-" in thanks.text
    assert (await Suggestion.get(id=suggestion_id)).outcome == SuggestionOutcome.ACCEPTED


async def test_not_my_problem_posts_and_opens_the_question(client: httpx.AsyncClient, make_user: Any,
                                                           forum_content: Forum) -> None:
    await forum_content.answered("Card declined at the supermarket", "Unfreeze the card in the app.")
    await forum_content.settle()
    csrf = await log_in(client, make_user, "maria")
    sent = await client.post("/ask", data={"csrf_token": csrf, "title": "Card declined at the supermarket"})
    suggestion_id = int(sent.headers["location"].rsplit("/", 1)[1])
    posted = await client.post(f"/suggestions/{suggestion_id}/reject", data={"csrf_token": csrf})
    assert posted.status_code == 303
    question_id = (await Suggestion.get(id=suggestion_id)).posted_question_id  # type: ignore[attr-defined]
    assert posted.headers["location"] == f"/questions/{question_id}"


async def test_a_new_problem_goes_to_its_swarm_room(client: httpx.AsyncClient, make_user: Any) -> None:
    csrf = await log_in(client, make_user, "maria")
    sent = await client.post("/ask", data={"csrf_token": csrf, "title": "Statements tab crashes the app",
                                           "body": "Since the update."})
    assert sent.status_code == 303 and re.fullmatch(r"/swarms/\d+", sent.headers["location"])


async def test_bad_input_shows_the_form_again_with_the_error(client: httpx.AsyncClient, make_user: Any) -> None:
    csrf = await log_in(client, make_user, "maria")
    sent = await client.post("/ask", data={"csrf_token": csrf, "title": "short", "body": "my details <b>"})
    assert sent.status_code == 400
    assert "title must be at least 10 characters" in sent.text and 'aria-invalid="true"' in sent.text
    assert "my details &lt;b&gt;" in sent.text, "what was typed is kept (escaped)"
    assert await Question.all().count() == 0


async def test_the_form_needs_its_csrf_token(client: httpx.AsyncClient, make_user: Any) -> None:
    await log_in(client, make_user, "maria")
    sent = await client.post("/ask", data={"title": "Card declined at the supermarket"})
    assert sent.status_code == 403


async def test_staff_see_possible_duplicates_and_link_one_in_a_click(client: httpx.AsyncClient, make_user: Any,
                                                                     forum_content: Forum) -> None:
    original = await forum_content.answered("Card declined at the supermarket today", "Unfreeze the card.")
    copy = await forum_content.question("Card declined at the supermarket")
    unrelated = await forum_content.question("Where do I find my yearly tax statement")
    await forum_content.settle()
    customer_page = await client.get(f"/questions/{copy}")
    assert "Possible duplicates" not in customer_page.text
    csrf = await log_in(client, make_user, "dana", role="staff")
    page = await client.get(f"/questions/{copy}")
    assert "Possible duplicates" in page.text
    panel = page.text[page.text.index("Possible duplicates"):]
    assert f'href="/questions/{original.question_id}"' in panel and f"/questions/{unrelated}" not in panel
    assert f'name="duplicate_of" value="{original.question_id}"' in panel
    linked = await client.post(f"/questions/{copy}/duplicate", data={"csrf_token": csrf,
                                                                     "duplicate_of": str(original.question_id)})
    assert linked.status_code == 303
    assert (await Question.get(id=copy)).status == QuestionStatus.DUPLICATE
    assert "Possible duplicates" not in (await client.get(f"/questions/{copy}")).text
