"""Site search over HTTP: what it finds (answers, comments, transcripts, duplicates), for whom, in which
syntax, in pages, and that snippets are safe HTML. The deterministic embedder: only words matter here."""

from __future__ import annotations

import re

import httpx
import pytest
from tortoise import connections

from supportswarm.forum import services as forum
from supportswarm.matching import site_search
from tests.search.conftest import Threads
from tests.security.htmlscan import executable_markup


async def test_words_only_in_an_answer_or_a_comment_find_the_question(threads: Threads) -> None:
    qid = await threads.question("Router drops the connection at night", "It happens around midnight.")
    aid = await threads.answer(qid, "Update the xylophonic firmware from the admin page.")
    await threads.comment("Same here with the quasistellar adapter.", answer_id=aid)
    await threads.question("Printer is offline again", "Nothing about routers here.")

    response = await threads.search("xylophonic firmware")
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 1 and [i["id"] for i in body["items"]] == [qid]
    item = body["items"][0]
    assert item["matched_in"] == ["answer"]
    assert item["match"] == {"in": "answer", "url": f"/questions/{qid}#answer-{aid}"}
    assert "<mark>xylophonic</mark>" in item["snippet_html"]
    assert item["title"] == "Router drops the connection at night", "the question's summary comes along"

    item = (await threads.search("quasistellar")).json()["items"][0]
    assert (item["id"], item["match"]["in"]) == (qid, "comment")


async def test_title_words_rank_above_the_same_words_in_an_answer(threads: Threads) -> None:
    in_answer = await threads.question("Laptop will not charge", "Battery stays at zero.")
    await threads.answer(in_answer, "Maybe the marmoset cable is broken.")
    in_title = await threads.question("Marmoset cable broken after a week", "It frays at the plug.")
    assert await threads.found("marmoset cable") == [in_title, in_answer]


async def test_a_resolved_transcript_is_searchable_by_anyone(threads: Threads) -> None:
    qid = await threads.question("Card blocked while travelling", "Abroad, my card stopped working.")
    swarm = await threads.room(qid, "Did you tell us about the trip?", "The quokka rule flagged it abroad.",
                               "Unblock it in the app under travel notices.")
    await threads.resolve(swarm, 3)
    body = (await threads.search("quokka rule")).json()
    assert [i["id"] for i in body["items"]] == [qid]
    assert body["items"][0]["match"] == {"in": "transcript", "url": f"/swarms/{swarm.id}#msg-2"}
    assert "<mark>quokka</mark>" in body["items"][0]["snippet_html"]


async def test_an_open_transcript_only_for_those_who_may_join_the_room(threads: Threads) -> None:
    qid = await threads.question("Payment stuck in pending", "Since yesterday.", by="asker")
    other = await threads.question("Another stuck payment", "Also pending.", by="other_asker")
    await threads.room(qid, "Looks like the wombat settlement batch failed.")
    await threads.room(other, "Unrelated chatter in another room.")
    for name, role in [("stranger", "customer"), ("other_asker", "customer"), ("expert1", "expert"),
                       ("staff1", "staff"), ("asker", "customer")]:
        await threads.user(name, role)
    assert await threads.found("wombat settlement") == []
    assert await threads.found("wombat settlement", as_user="stranger") == []
    assert await threads.found("wombat settlement", as_user="other_asker") == [], "an asker of another room"
    for member in ("asker", "expert1", "staff1"):
        assert await threads.found("wombat settlement", as_user=member) == [qid], member


async def test_a_linked_question_asker_may_search_the_incident_room(threads: Threads) -> None:
    qid = await threads.question("Outage: app login fails", "Everyone is affected.", by="first")
    linked = await threads.question("Cannot log in to the app", "Since this morning.", by="second")
    swarm = await threads.room(qid, "The okapi gateway certificate expired.")
    await threads.user("second")
    from supportswarm.swarm import services as swarms

    await swarms.link_questions_to_swarm(swarm.id, [linked], broker=threads.resources.broker)
    assert await threads.found("okapi gateway", as_user="second") == [qid]


async def test_a_duplicate_leads_to_its_canonical_question(threads: Threads) -> None:
    canonical = await threads.question("Refund never arrived", "Waited two weeks for the refund.")
    duplicate = await threads.question("Where is my pangolin refund", "Asked for it last month.")
    await forum.mark_duplicate(await threads.user("mod", "staff"), duplicate, canonical)
    body = (await threads.search("pangolin")).json()
    assert [i["id"] for i in body["items"]] == [canonical]
    assert body["items"][0]["match"] == {"in": "duplicate", "url": f"/questions/{duplicate}"}
    assert [i["id"] for i in (await threads.search("refund")).json()["items"]] == [canonical], "one row per thread"


async def test_hidden_posts_never_match(threads: Threads) -> None:
    qid = await threads.question("Hidden things question", "Plain body.")
    aid = await threads.answer(qid, "A narwhal answer that a moderator hid.")
    hidden_q = await threads.question("Narwhal spam question", "Buy now.")
    db = connections.get("default")
    await db.execute_query("UPDATE answers SET hidden_at = now() WHERE id = $1", [aid])
    await db.execute_query("UPDATE questions SET hidden_at = now() WHERE id = $1", [hidden_q])
    await threads.user("staff2", "staff")
    assert await threads.found("narwhal") == []
    assert await threads.found("narwhal", as_user="staff2") == []


async def test_phrases_and_exclusions(threads: Threads) -> None:
    phrase = await threads.question("Card payment declined abroad", "At a hotel.")
    scattered = await threads.question("Declined: is my card blocked for any payment", "At a shop.")
    assert sorted(await threads.found("payment declined")) == sorted([phrase, scattered])
    assert await threads.found('"payment declined"') == [phrase]
    assert await threads.found("card -hotel") == [scattered]
    assert sorted(await threads.found("hotel or shop")) == sorted([phrase, scattered])


async def test_qualifiers_and_filters(threads: Threads) -> None:
    billing = await threads.question("Invoice shows a gecko surcharge", "Twice.", ["billing"], by="maria")
    other = await threads.question("Gecko surcharge on my statement", "Once.", ["cards"], by="tomas")
    aid = await threads.answer(other, "The gecko surcharge is a currency fee.")
    await forum.accept_answer(await threads.user("tomas"), aid)
    assert await threads.found("gecko tag:billing") == [billing]
    assert await threads.found("gecko", tag="billing") == [billing]
    assert await threads.found("gecko is:resolved") == [other]
    assert await threads.found("gecko", status="open") == [billing]
    assert await threads.found("gecko user:Maria") == [billing]
    assert await threads.found("gecko user:nobody_here") == []
    assert await threads.found("gecko tag:billing is:resolved") == [], "every filter applies"
    assert await threads.found("tag:cards") == [other], "qualifiers alone list the filtered questions"


async def test_paging(threads: Threads) -> None:
    ids = [await threads.question(f"Zebra crossing question number {i}", "About the zebra.") for i in range(25)]
    first = (await threads.search("zebra")).json()
    second = (await threads.search("zebra", page=2)).json()
    assert (first["total"], second["total"], first["per_page"], first["page"], second["page"]) == (25, 25, 20, 1, 2)
    assert len(first["items"]) == 20 and len(second["items"]) == 5
    assert sorted(i["id"] for i in first["items"] + second["items"]) == ids
    assert (await threads.search("zebra", page=3)).json()["items"] == []


async def test_a_title_is_shown_whole_with_its_matches_marked(threads: Threads) -> None:
    await threads.question("Where do I find the PIN of my new zebracard?", "The letter had no PIN in it.")
    item = (await threads.search("zebracard")).json()["items"][0]
    assert item["title_html"] == "Where do I find the PIN of my new <mark>zebracard</mark>?"


async def test_snippets_drop_markdown_emphasis_and_code_marks(threads: Threads) -> None:
    qid = await threads.question("Stolen card", "What now?")
    await threads.answer(qid, "Open **Cards → Zebrafreeze** at once, or run `zebrafreeze` in __the__ app.")
    snippet = (await threads.search("zebrafreeze")).json()["items"][0]["snippet_html"]
    assert "*" not in snippet and "`" not in snippet and "__" not in snippet
    assert "<mark>Zebrafreeze</mark>" in snippet


PAYLOAD = '<img src=x onerror=alert(1)> zanzibar <script>alert(2)</script> "><svg onload=alert(3)>'


async def test_snippets_are_escaped_text_with_only_our_marks(threads: Threads, client: httpx.AsyncClient) -> None:
    qid = await threads.question(f"Zanzibar {PAYLOAD}", f"{PAYLOAD} and \ue000zanzibar\ue001 <mark>fake</mark>")
    await threads.answer(qid, PAYLOAD)
    item = (await threads.search("zanzibar")).json()["items"][0]
    for html in (item["snippet_html"], item["title_html"]):
        assert "<img" not in html and "<script" not in html and "<svg" not in html, html
        assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html, "the text as written, escaped"
        assert re.sub(r"</?mark>", "", html).count("<") == 0, "the only markup is our <mark>"
        assert html.count("<mark>") == html.count("</mark>") >= 1
        assert not set(html) & {"\ue000", "\ue001", "\ue002"}
    assert "&lt;mark&gt;fake" in item["snippet_html"], "a <mark> in the text is text"
    page = await client.get("/search", params={"q": "zanzibar"})
    assert page.status_code == 200 and "<mark>Zanzibar</mark>" in page.text
    assert executable_markup(page.text) == []
    reflected = await client.get("/search", params={"q": PAYLOAD})
    assert reflected.status_code == 200 and executable_markup(reflected.text) == []


@pytest.mark.parametrize(("query", "field"), [
    ("q=", "q"),
    ("q=%20%20", "q"),
    ("", "q"),
    ("q=" + "a" * (site_search.Q_MAX + 1), "q"),
    ("q=abc%00def", "q"),
    ("q=%ff%fe", "q"),
    ("q=-only+-exclusions", "q"),
    ("q=card+is:bogus", "q"),
    ("q=card+tag:Bad!Tag", "q"),
    ("q=card+user:x", "q"),
    ("q=card+user:ann+user:bob", "q"),
    ("q=card&page=0", "page"),
    ("q=card&page=abc", "page"),
    ("q=card&page=" + str(site_search.MAX_PAGE + 1), "page"),
    ("q=card&page=99999999999999999999", "page"),
    ("q=card&status=duplicate", "status"),
    ("q=card&tag=" + "x" * 40, "tag"),
])
async def test_bad_input_is_a_400_naming_the_field(threads: Threads, client: httpx.AsyncClient, query: str,
                                                   field: str) -> None:
    response = await client.get(f"/api/v1/search?{query}")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_input"
    assert response.json()["error"]["field"] == field
    page = await client.get(f"/search?{query}")
    assert page.status_code in (200, 400), "the page shows the box (blank q) or the error, never a 500"


@pytest.mark.parametrize("text", ["the and of", "a & b | !c <-> (d) 'e' f:* \\ ;--", "ü ß カード 💳", '"unclosed',
                                  "or", "- -", "tag:", "card -the", "(((", "-\"x y\" z"])
async def test_odd_text_is_never_an_error(threads: Threads, text: str) -> None:
    await threads.question("Card question for odd text", "card")
    response = await threads.search(text)
    assert response.status_code in (200, 400), response.text
    assert "error" in response.json() or "items" in response.json()


async def test_the_page_has_a_search_box_and_results(threads: Threads, client: httpx.AsyncClient) -> None:
    qid = await threads.question("Tapir statement is missing", "Where is my tapir statement?")
    home = await client.get("/")
    assert 'action="/search"' in home.text, "the box is in every page's header"
    empty = await client.get("/search")
    assert empty.status_code == 200 and "result" not in empty.text
    page = await client.get("/search", params={"q": "tapir"})
    assert page.status_code == 200 and f'href="/questions/{qid}"' in page.text and "1 result" in page.text
    bad = await client.get("/search", params={"q": "-tapir"})
    assert bad.status_code == 400 and "at least one word" in bad.text
