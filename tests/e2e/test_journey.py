"""Issue 8's journey in a real browser: a customer signs up, sees suggestions while typing and accepts one
(a deflection); asks something new and a swarm opens; an expert in a second browser context is invited
live, joins, both chat and see each other typing; the solution is marked and the question page shows the
accepted answer; a lead's dashboard renders its charts. Screenshots land in test-artifacts/e2e/."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Dialog, Page, WebSocket, expect

from supportswarm.accounts import services as accounts
from supportswarm.accounts.models import User
from supportswarm.forum import services as forum
from supportswarm.forum.models import Question
from supportswarm.matching.models import Suggestion, SuggestionOutcome
from supportswarm.metrics.events import EventKind
from supportswarm.metrics.models import Event
from supportswarm.moderation.visibility import HIDDEN_TEXT
from supportswarm.resources import Resources
from supportswarm.swarm import expertise
from supportswarm.swarm import services as swarms
from supportswarm.swarm.models import Swarm, SwarmStatus
from tests.e2e.conftest import ARTIFACTS, DESKTOP, PHONE, Server, collect_errors
from tests.security.scene import NoJobs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

PASSWORD = "correct horse battery"
LIVE_MS = 15_000  # generous bound for anything pushed over a websocket
# (title, body, tags, answer): what the forum already knows, answered by the expert and accepted.
KNOWN = [
    ("How can I see my card PIN?", "I forgot the PIN of my physical card.", ["cards", "pin"],
     "Open **Cards → (your card) → Show PIN** and confirm with your passcode."),
    ("Card payment declined at a shop even though I have money",
     "My card was declined at the supermarket twice today. The balance is fine.", ["cards", "payments"],
     "After five contactless payments the card asks for chip and PIN once. Insert it and enter the PIN."),
    ("How long does a bank transfer to another country take?", "I sent money abroad yesterday.", ["transfers"],
     "SEPA transfers arrive the next working day; SWIFT transfers take 1-4 working days."),
    ("How do I cancel my premium plan?", "I want to go back to the free plan.", ["billing"],
     "Open **Profile → Plan → Change plan** and choose Standard."),
]
DEFLECTED = "How do I see the PIN of my card?"
NEW_TITLE = "The hologram on my metal card is peeling off"
NEW_BODY = "The silver hologram on the front of my metal card started to peel at one corner."
SOLUTION = "Metal cards are replaced free: order a new one under Cards, Replace card, reason damaged."


async def seed(res: Resources) -> None:
    """An expert who answered card questions (with an expertise profile), a lead, and accepted answers."""
    asker = await accounts.register("olu", PASSWORD)
    expert = await accounts.register("sofia", PASSWORD, role="expert")
    await accounts.register("lena", PASSWORD, role="lead")
    for title, body, tags, text in KNOWN:
        question = await forum.create_question(asker, title, body, tags, jobs=res.jobs)
        answer = await forum.post_answer(expert, question.id, text)
        await forum.accept_answer(asker, answer.id)
    await res.jobs.drain()  # the questions are embedded before anyone searches them
    await expertise.rebuild_expertise(embedder=res.embedder, expert_reputation=res.settings.expert_reputation)


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def log_in(context: BrowserContext, server: Server, username: str) -> Page:
    page = await context.new_page()
    await page.goto(f"{server.url}/login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.locator("form[action='/login']").get_by_role("button").click()
    await expect(page.locator(".nav .me")).to_contain_text(username)
    return page


async def wait_for_welcome(ws: WebSocket) -> None:
    await ws.wait_for_event("framereceived", lambda payload: '"welcome"' in str(payload), timeout=LIVE_MS)


async def sign_up_and_deflect(customer: Page, server: Server) -> None:
    await customer.goto(f"{server.url}/signup")
    await customer.fill("#username", "maria")
    await customer.fill("#password", PASSWORD)
    await customer.locator("form[action='/signup']").get_by_role("button").click()
    await expect(customer.locator(".nav .me")).to_contain_text("maria")

    await customer.goto(f"{server.url}/ask")
    await customer.locator("#ask-title").press_sequentially(DEFLECTED, delay=20)
    first = customer.locator("#suggest-list li").first
    await expect(first).to_contain_text("How can I see my card PIN?", timeout=LIVE_MS)
    await shot(customer, "01-ask-suggestions")
    await customer.fill("#ask-body", "I never got a PIN letter.")
    await customer.locator("#ask-form").get_by_role("button", name="Post your question").click()
    await expect(customer).to_have_url(re.compile(r"/ask/suggestions/\d+$"))
    await expect(customer.locator("h1")).to_have_text("This answer should solve it")
    await customer.get_by_role("button", name="This solved my problem").click()
    await expect(customer.locator("h1")).to_have_text("Glad that solved it")
    await shot(customer, "02-deflected")


async def ask_into_swarm(customer: Page, server: Server) -> int:
    await customer.goto(f"{server.url}/ask")
    await customer.fill("#ask-title", NEW_TITLE)
    await customer.fill("#ask-body", NEW_BODY)
    await customer.fill("#ask-tags", "cards")
    await customer.locator("#ask-form").get_by_role("button", name="Post your question").click()
    await expect(customer).to_have_url(re.compile(r"/swarms/\d+$"))
    return int(customer.url.rsplit("/", 1)[1])


async def chat(customer: Page, expert: Page) -> None:
    """Presence, typing both ways, and messages both ways, all without a reload."""
    await expect(customer.locator("#members .member.online", has_text="sofia")).to_be_visible(timeout=LIVE_MS)
    await customer.locator("#say").press_sequentially("It started last week, only on one corner.", delay=15)
    await expect(expert.locator("#typing")).to_contain_text("maria is typing", timeout=LIVE_MS)
    await customer.locator("#say").press("Enter")
    await expect(expert.locator("#transcript")).to_contain_text("only on one corner", timeout=LIVE_MS)

    await expert.locator("#say").press_sequentially(SOLUTION, delay=5)
    await expect(customer.locator("#typing")).to_contain_text("sofia is typing", timeout=LIVE_MS)
    await shot(customer, "05-room-typing-customer")
    await expert.locator("#say").press("Enter")
    await expect(customer.locator("#transcript")).to_contain_text(SOLUTION, timeout=LIVE_MS)
    await expect(customer.locator("#typing")).to_have_text("")  # a message ends the typing notice


async def mark_solution(customer: Page, expert: Page) -> None:
    async def accept(dialog: Dialog) -> None:
        await dialog.accept()  # the prompt offers the message text for editing; keep it as it is

    customer.once("dialog", accept)
    await customer.locator(".msg", has_text=SOLUTION).get_by_role("button", name="Mark as solution").click()
    for page in (customer, expert):
        await expect(page.locator("#swarm-status")).to_have_text("solved", timeout=LIVE_MS)
    await shot(customer, "06-room-solved")
    await shot(expert, "06-room-solved-expert")


async def test_customer_expert_and_lead_journey(server: Server, resources: Resources, browser: Browser) -> None:
    await seed(resources)
    customer_ctx = await browser.new_context(viewport=DESKTOP)
    expert_ctx = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    customer = await customer_ctx.new_page()
    errors = collect_errors(customer)

    await sign_up_and_deflect(customer, server)
    maria = await User.get(username="maria")
    assert await Suggestion.filter(asker_id=maria.id, outcome=SuggestionOutcome.ACCEPTED).count() == 1
    assert await Event.filter(kind=EventKind.SUGGESTION_ACCEPTED, actor_id=maria.id).count() == 1
    assert not await Question.filter(title=DEFLECTED).exists()  # deflected: nothing was posted

    expert = await log_in(expert_ctx, server, "sofia")
    errors += collect_errors(expert)
    async with expert.expect_websocket(lambda ws: ws.url.endswith("/ws/inbox")) as inbox_ws:
        await expert.goto(f"{server.url}/inbox")
    await wait_for_welcome(await inbox_ws.value)
    await shot(expert, "03-inbox-before")

    swarm_id = await ask_into_swarm(customer, server)
    toast = expert.locator(".toast", has_text=NEW_TITLE)
    await expect(toast).to_be_visible(timeout=LIVE_MS)  # the invitation arrived live, no reload
    await expect(expert.locator("#inbox-list")).to_contain_text(NEW_TITLE, timeout=LIVE_MS)
    await shot(expert, "04-inbox-invited")
    await toast.get_by_role("link").click()
    await expect(expert).to_have_url(f"{server.url}/swarms/{swarm_id}")

    await chat(customer, expert)
    await mark_solution(customer, expert)

    swarm = await Swarm.get(id=swarm_id)
    assert swarm.status == SwarmStatus.RESOLVED
    await customer.goto(f"{server.url}/questions/{swarm.question_id}")  # type: ignore[attr-defined]
    accepted = customer.locator(".answer.accepted")
    await expect(accepted).to_contain_text("Accepted answer")
    await expect(accepted).to_contain_text(SOLUTION)
    await shot(customer, "07-question-accepted")

    lead_ctx = await browser.new_context(viewport=DESKTOP)
    lead = await log_in(lead_ctx, server, "lena")
    errors += collect_errors(lead)
    await lead.goto(f"{server.url}/dashboard")
    charts = lead.locator("svg.chart")
    await expect(charts.first).to_be_visible()
    assert await charts.count() >= 4
    for i in range(await charts.count()):
        box = await charts.nth(i).bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 80
        assert await charts.nth(i).locator("rect, polyline, circle").count() > 0  # data drawn, not only axes
    await expect(lead.locator("#kpi-deflection")).to_contain_text("1 of")
    await shot(lead, "08-dashboard")
    assert errors == []


async def test_a_message_hidden_by_a_moderator_changes_on_the_open_room_page(server: Server, resources: Resources,
                                                                             browser: Browser) -> None:
    asker = await accounts.register("olu", PASSWORD)
    spammer = await accounts.register("spam", PASSWORD, role="expert")
    moderator = await accounts.register("moe", PASSWORD, role="staff")
    q = await forum.create_question(asker, "My card payment was declined twice", "At the shop.", ["cards"], jobs=None)
    swarm = await swarms.open_swarm(q.id, opened_by=asker, reason="manual", broker=resources.broker, jobs=NoJobs())
    await swarms.post_message(swarm.id, spammer, "buy cheap pills at example.com", "c1", broker=resources.broker,
                              jobs=NoJobs())
    page = await log_in(await browser.new_context(viewport=DESKTOP), server, "olu")
    errors = collect_errors(page)
    await page.goto(f"{server.url}/swarms/{swarm.id}")
    text = page.locator("#msg-1 .text")
    await expect(text).to_have_text("buy cheap pills at example.com", timeout=LIVE_MS)
    async with httpx.AsyncClient(base_url=server.url) as http:
        flag = await http.post(f"/api/v1/swarms/{swarm.id}/messages/1/flag", json={"reason": "spam"},
                               headers={"Authorization": f"Bearer {await accounts.create_token(asker)}"})
        hide = await http.post(f"/api/v1/flags/{flag.json()['id']}/resolve", json={"action": "hide"},
                               headers={"Authorization": f"Bearer {await accounts.create_token(moderator)}"})
    assert hide.status_code == 200
    await expect(text).to_have_text(HIDDEN_TEXT, timeout=LIVE_MS)  # no reload
    assert errors == []
