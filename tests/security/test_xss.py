"""XSS: a corpus of payloads in every place users write text, then every page that shows it is parsed.

Pages must contain no executable markup (tests/security/htmlscan.py: scripts only from /static/, no
event handlers, no javascript:/data: URLs, no frames, objects or styles), while the API gives back
exactly the text that was sent: sanitising is done when rendering, never on what is stored.
"""

from __future__ import annotations

import uuid
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from asgi_lifespan import LifespanManager

from supportswarm.markdown import render_markdown
from supportswarm.swarm import services as swarms
from tests.conftest import Actor
from tests.security.htmlscan import executable_markup
from tests.security.room import join

pytestmark = pytest.mark.timeout(180)

PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)><script>alert(2)</script></svg>",
    "<svg><animate onbegin=alert(1) attributeName=x dur=1s>",
    '<a href="javascript:alert(1)">click</a>',
    '<a href="jav&#x09;ascript:alert(1)">tab</a>',
    '<a href="&#106;avascript:alert(1)">entity</a>',
    "[click me](javascript:alert(1))",
    "[mixed case](JaVaScRiPt:alert(1))",
    "[angle](<javascript:alert(1)>)",
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![img](javascript:alert(1))",
    "![pixel](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    '<iframe src="javascript:alert(1)"></iframe>',
    '<object data="data:text/html,<script>alert(1)</script>"></object>',
    '<embed src="javascript:alert(1)">',
    "\"><script>alert(1)</script>",
    "'><img src=x onerror=alert(1)>",
    '<div style="background:url(javascript:alert(1))">styled</div>',
    "<<script>alert(1)//<</script>",
    "<scr<script>ipt>alert(1)</script>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<body onload=alert(1)>",
    "<input autofocus onfocus=alert(1)>",
    "<details open ontoggle=alert(1)>",
    "<form action=javascript:alert(1)><button>go</button></form>",
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    "<link rel=import href=javascript:alert(1)>",
    "<base href=javascript:alert(1)//>",
    "</textarea><script>alert(1)</script>",
    "</title><script>alert(1)</script>",
    "<!--<script>alert(1)</script>-->",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "`<script>alert(1)</script>` and ```\n<script>alert(2)</script>\n```",
    "<img src=\"x\" alt=\"\\\"\" onerror=\"alert(1)\">",
    "{{ 7*7 }} {% raw %} ${alert(1)}",
    "<a href='https://example.com' onclick='alert(1)'>ok link, bad handler</a>",
    "unclosed <b><i><a href=\"https://x.test\">tags",
]


def single_line(text: str) -> bool:
    return text == " ".join(text.split())


async def page(client: httpx.AsyncClient, url: str, actor: Actor | None = None, status: int = 200) -> str:
    response = await client.get(url, headers=actor.headers if actor else {})
    assert response.status_code == status, (url, response.status_code, response.text[:300])
    return response.text


@pytest.fixture
async def people(make_user: Any) -> dict[str, Actor]:
    return {role: await make_user(f"x{role}", role) for role in ("customer", "staff", "admin")}


def test_the_scanner_sees_the_payloads_when_they_are_not_escaped() -> None:
    """The checks below can fail: inserted raw into a page, the markup payloads are found."""
    raw_markup = [p for p in PAYLOADS if executable_markup(p)]
    assert len(raw_markup) >= 25, len(raw_markup)
    assert executable_markup(f"<p>{PAYLOADS[0]}</p>") == ["<script> not from /static/: {}",
                                                          "inline script: 'alert(1)'"]


async def test_markdown_renderer_neutralises_every_payload() -> None:
    for payload in PAYLOADS:
        assert executable_markup(str(render_markdown(payload))) == [], payload


async def test_links_in_user_markdown_are_nofollow_ugc() -> None:
    anchors = _Anchors()
    anchors.feed(str(render_markdown("see [the docs](https://example.com/help) or <https://example.org>")))
    assert [a["href"] for a in anchors.found] == ["https://example.com/help", "https://example.org"]
    for a in anchors.found:
        assert {"nofollow", "ugc"} <= set(a["rel"].split())


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.found.append({k: v or "" for k, v in attrs})


async def test_forum_pages_show_payloads_inert_and_the_api_returns_them_verbatim(
        client: httpx.AsyncClient, people: dict[str, Actor]) -> None:
    asker, staff = people["customer"], people["staff"]
    posted: list[tuple[str, int, int]] = []
    for i, payload in enumerate(PAYLOADS):
        title = f"Help {payload}" if single_line(payload) and len(payload) <= 190 else f"Help with payload {i}"
        ask = await asker.post("/api/v1/questions", {"title": title, "body": payload, "tags": ["xss"], "force": True})
        assert ask.status_code == 201, ask.text
        qid = ask.json()["question"]["id"]
        answer = await staff.post(f"/api/v1/questions/{qid}/answers", {"body": payload})
        assert answer.status_code == 201, answer.text
        aid = answer.json()["id"]
        for url in (f"/api/v1/questions/{qid}/comments", f"/api/v1/answers/{aid}/comments"):
            assert (await staff.post(url, {"body": payload})).status_code == 201
        edit = await asker.patch(f"/api/v1/questions/{qid}", {"title": title, "body": payload, "tags": "xss",
                                                               "comment": payload[:300]})
        assert edit.status_code == 200, edit.text
        posted.append((title, qid, aid))

    problems: dict[str, list[str]] = {}
    for (title, qid, aid), payload in zip(posted, PAYLOADS, strict=True):
        detail = (await client.get(f"/api/v1/questions/{qid}")).json()
        assert (detail["title"], detail["body"]) == (title, payload)
        assert [a["body"] for a in detail["answers"]] == [payload]
        assert [c["body"] for c in detail["comments"]] == [payload]
        assert [c["body"] for c in detail["answers"][0]["comments"]] == [payload]
        urls = [(f"/questions/{qid}", None), (f"/questions/{qid}", staff), (f"/questions/{qid}/revisions", None),
                (f"/questions/{qid}/edit", asker), (f"/answers/{aid}/edit", staff), (f"/answers/{aid}/revisions", None)]
        for url, actor in urls:
            problems[f"{url} as {actor.user['username'] if actor else 'anonymous'}"] = executable_markup(
                await page(client, url, actor))
    for url in ("/", "/?page=2", "/?tag=xss", f"/users/{asker.user['username']}", "/?status=unanswered"):
        problems[url] = executable_markup(await page(client, url))
    assert {url: found for url, found in problems.items() if found} == {}


async def test_echoed_input_is_inert(client: httpx.AsyncClient, people: dict[str, Actor]) -> None:
    """Pages that repeat what was typed: the ask form after an error, filters, error pages."""
    problems = {}
    for payload in PAYLOADS:
        response = await client.post("/ask", data={"title": "short", "body": payload},
                                     headers=people["customer"].headers)
        assert response.status_code == 400 and "title" in response.text
        problems[f"ask form: {payload}"] = executable_markup(response.text)
        tag_filter = await client.get(f"/?tag={quote(payload)}")
        assert tag_filter.status_code in {200, 400}
        problems[f"tag filter: {payload}"] = executable_markup(tag_filter.text)
        missing = await client.get(f"/users/{quote(payload, safe='')}")
        assert missing.status_code == 404
        problems[f"profile: {payload}"] = executable_markup(missing.text)
    assert {k: v for k, v in problems.items() if v} == {}


async def test_usernames_and_tags_cannot_carry_markup(client: httpx.AsyncClient, people: dict[str, Actor]) -> None:
    for payload in PAYLOADS:
        signup = await client.post("/api/v1/auth/signup", json={"username": payload, "password": "long enough pw"})
        assert signup.status_code == 400 and signup.json()["error"]["field"] == "username", payload
        ask = await people["customer"].post("/api/v1/questions", {"title": "A question with a bad tag",
                                                                  "body": "", "tags": [payload], "force": True})
        assert ask.status_code == 400 and ask.json()["error"]["field"] == "tags", payload
    client.cookies.clear()


async def test_room_messages_are_inert_on_the_page_and_verbatim_in_the_room(
        app: LifespanManager, client: httpx.AsyncClient, people: dict[str, Actor]) -> None:
    asker, staff = people["customer"], people["staff"]
    ask = await asker.post("/api/v1/questions", {"title": "Help <script>alert(1)</script> in the room",
                                                 "body": PAYLOADS[1], "force": True})
    qid = ask.json()["question"]["id"]
    swarm = (await asker.post(f"/api/v1/questions/{qid}/swarm")).json()
    async with join(app.app, swarm["id"], staff.headers) as watcher, join(app.app, swarm["id"], asker.headers) as room:
        for payload in PAYLOADS:
            await room.send({"type": "say", "client_msg_id": str(uuid.uuid4()), "body": payload})
            relayed = await watcher.next("message", "error")
            assert (relayed["type"], relayed["body"]) == ("message", payload)
    stored = (await asker.get(f"/api/v1/swarms/{swarm['id']}?limit=500")).json()
    assert [m["body"] for m in stored["messages"]] == PAYLOADS
    assert swarms.MESSAGE_MAX >= max(map(len, PAYLOADS))
    problems = {
        "room as asker": executable_markup(await page(client, f"/swarms/{swarm['id']}", asker)),
        "room as staff": executable_markup(await page(client, f"/swarms/{swarm['id']}", staff)),
        "inbox as staff": executable_markup(await page(client, "/inbox", staff)),
    }
    assert {k: v for k, v in problems.items() if v} == {}


async def test_webhook_descriptions_are_inert_on_admin_pages(client: httpx.AsyncClient,
                                                              people: dict[str, Actor]) -> None:
    admin = people["admin"]
    problems = {}
    for payload in PAYLOADS:
        if not single_line(payload) or len(payload) > 200:
            continue
        hook = await admin.post("/api/v1/webhooks", {"url": "https://hooks.example.com/in", "description": payload})
        assert hook.status_code == 201, hook.text
        assert hook.json()["description"] == payload
        problems[f"/admin/webhooks/{hook.json()['id']}"] = executable_markup(
            await page(client, f"/admin/webhooks/{hook.json()['id']}", admin))
    problems["/admin/webhooks"] = executable_markup(await page(client, "/admin/webhooks", admin))
    assert {k: v for k, v in problems.items() if v} == {}
