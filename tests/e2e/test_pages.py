"""Every page as a person sees it: desktop (1280 px) and phone (390 px), light and dark, on the demo content.
Each page must fit the screen (no sideways scrolling), label every control, name every button and link,
keep text contrast at WCAG AA, and run without script errors. Screenshots: test-artifacts/e2e/pages/."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from playwright.async_api import Browser, Page, expect

from supportswarm.demo import PASSWORD, seed_demo
from supportswarm.forum.models import Question
from supportswarm.resources import Resources
from supportswarm.swarm.models import Swarm, SwarmStatus
from tests.e2e.conftest import ARTIFACTS, DESKTOP, PHONE, Server, collect_errors

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

Scheme = Literal["light", "dark"]
MODES: list[tuple[str, Scheme]] = [("desktop", "light"), ("phone", "dark"), ("desktop", "dark"), ("phone", "light")]

# Runs in the page: what a reviewer would flag, as plain strings (empty lists when all is well).
AUDIT_JS = """() => {
  const visible = (el) => { const r = el.getBoundingClientRect(); const s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; };
  const describe = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
  const unlabelled = [...document.querySelectorAll('input, select, textarea')]
    .filter((el) => el.type !== 'hidden' && visible(el))
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') &&
                    !el.getAttribute('aria-labelledby') && !el.title)
    .map(describe);
  const nameless = [...document.querySelectorAll('a[href], button')]
    .filter((el) => visible(el) && !el.textContent.trim() && !el.getAttribute('aria-label') && !el.title)
    .map(describe);
  const rgb = (c) => { const m = c.match(/[\\d.]+/g) || ['0', '0', '0', '0'];
    const k = c.startsWith('color(srgb') ? 255 : 1;  // color-mix() computes to color(srgb r g b / a), 0..1
    return { r: m[0] * k, g: m[1] * k, b: m[2] * k, a: m.length > 3 ? +m[3] : 1 }; };
  const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const over = (top, under) => ({ r: top.r * top.a + under.r * (1 - top.a), g: top.g * top.a + under.g * (1 - top.a),
                                  b: top.b * top.a + under.b * (1 - top.a), a: 1 });
  const background = (el) => { const layers = [];
    for (let n = el; n; n = n.parentElement) { const c = rgb(getComputedStyle(n).backgroundColor);
      if (c.a > 0) { layers.push(c); if (c.a >= 1) break; } }
    let base = { r: 255, g: 255, b: 255, a: 1 };
    for (const c of layers.reverse()) base = over(c, base);
    return base; };
  const lowContrast = [];
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('svg, [disabled], [aria-hidden="true"]') || !visible(el)) continue;
    const text = [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent).join('').trim();
    if (!text) continue;
    const s = getComputedStyle(el);
    if (parseFloat(s.opacity) < 1) continue;
    const bg = background(el);
    const fg = over(rgb(s.color), bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const large = parseFloat(s.fontSize) >= 24 || (parseFloat(s.fontSize) >= 18.6 && +s.fontWeight >= 700);
    if (ratio < (large ? 3 : 4.5)) lowContrast.push(describe(el) + ' "' + text.slice(0, 30) + '" ' + ratio.toFixed(2));
  }
  const overflow = document.documentElement.scrollWidth - window.innerWidth;
  return { unlabelled, nameless, lowContrast, overflow };
}"""


async def pages_of(res: Resources) -> dict[str | None, list[tuple[str, str]]]:
    """Who looks at what: None is a visitor who is not logged in."""
    resolved = await Swarm.filter(status=SwarmStatus.RESOLVED).first()
    live = await Swarm.filter(status=SwarmStatus.OPEN).order_by("id").first()
    # Unanswered and still open or (once the server's SLA watch ran) swarming.
    unanswered = await Question.filter(answer_count=0, status__in=["open", "swarming"]).order_by("id").first()
    assert resolved is not None and live is not None and unanswered is not None
    return {
        None: [("home", "/"), ("question-unanswered", f"/questions/{unanswered.id}"), ("profile", "/users/lars"),
               ("login", "/login"), ("signup", "/signup"), ("error-404", "/questions/999999"),
               ("search", "/search?q=card"), ("forgot-password", "/forgot-password")],
        "maria": [("question-solved-by-swarm", f"/questions/{resolved.question_id}"),  # type: ignore[attr-defined]
                  ("ask", "/ask"), ("settings", "/settings")],
        "dana": [("room", f"/swarms/{live.id}"), ("flags", "/admin/flags")],
        "lars": [("inbox", "/inbox")],
        "lena": [("dashboard", "/dashboard"), ("admin-users", "/admin/users")],
    }


async def log_in(page: Page, server: Server, username: str) -> None:
    await page.goto(f"{server.url}/login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.locator("form[action='/login']").get_by_role("button").click()
    await expect(page.locator(".nav .me")).to_be_visible()


async def audit(page: Page, name: str) -> list[str]:
    if name == "ask":  # the suggestions panel filled in, as a customer sees it while typing
        await page.locator("#ask-title").press_sequentially("my card is declined in shops", delay=10)
        await expect(page.locator("#suggest-list li").first).to_be_visible(timeout=15_000)
    result: dict[str, Any] = await page.evaluate(AUDIT_JS)
    problems = [f"control without a label: {x}" for x in result["unlabelled"]]
    problems += [f"button or link without a name: {x}" for x in result["nameless"]]
    problems += [f"text contrast below AA: {x}" for x in result["lowContrast"]]
    if result["overflow"] > 1:
        problems.append(f"page is {result['overflow']} px wider than the screen")
    return problems


async def test_every_page_fits_reads_and_labels(server: Server, resources: Resources, browser: Browser) -> None:
    assert await seed_demo(resources) == 40  # 36 questions, a duplicate and 3 swarm questions
    assert await seed_demo(resources) == 0  # idempotent: a second `serve --demo` adds nothing
    assert await Swarm.filter(status=SwarmStatus.OPEN).count() >= 2  # the server's SLA watch may add more
    (ARTIFACTS / "pages").mkdir(parents=True, exist_ok=True)
    plan = await pages_of(resources)
    problems: list[str] = []
    for device, scheme in MODES:
        for who, pages in plan.items():
            context = await browser.new_context(viewport=DESKTOP if device == "desktop" else PHONE,
                                                color_scheme=scheme, is_mobile=device == "phone",
                                                has_touch=device == "phone")
            page = await context.new_page()
            errors = collect_errors(page)
            if who:
                await log_in(page, server, who)
            for name, path in pages:
                await page.goto(f"{server.url}{path}")
                found = await audit(page, name)
                problems += [f"{name} ({device}, {scheme}): {p}" for p in found + errors]
                errors.clear()
                await page.screenshot(path=str(ARTIFACTS / "pages" / f"{name}-{device}-{scheme}.png"),
                                      full_page=True)
            await context.close()
    assert problems == [], "\n".join(problems)


async def test_theme_toggle_and_keyboard(server: Server, browser: Browser) -> None:
    context = await browser.new_context(viewport=DESKTOP, color_scheme="light")
    page = await context.new_page()
    await page.goto(f"{server.url}/")
    html = page.locator("html")
    toggle = page.locator("#theme-toggle")
    await expect(toggle).to_have_attribute("aria-pressed", "false")
    await toggle.click()
    await expect(html).to_have_attribute("data-theme", "dark")
    await expect(toggle).to_have_attribute("aria-pressed", "true")
    await page.reload()  # the choice is remembered, and applied before the page is drawn
    await expect(html).to_have_attribute("data-theme", "dark")
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 19, 25)"

    await page.keyboard.press("Tab")  # the first stop skips the navigation
    skip = page.locator("a.skip")
    await expect(skip).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("main")).to_be_focused()
    await page.keyboard.press("Tab")  # and the next stop is inside the content
    assert await page.evaluate("document.activeElement.closest('main') !== null")
    await context.close()
