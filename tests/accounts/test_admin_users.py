"""Admins manage users: search, role filter, pages, roles, deactivation; leads may only look."""

from __future__ import annotations

from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from supportswarm.accounts import services
from supportswarm.accounts.models import User
from supportswarm.forum import services as forum
from tests.accounts.helpers import PASSWORD, browser, log_in


async def test_list_searches_filters_and_pages(app: LifespanManager, make_user: Any) -> None:
    admin = await make_user("root", "admin")
    for i in range(52):
        await services.register(f"crew{i:02d}", PASSWORD, email=f"crew{i}@example.com",
                                role="staff" if i % 10 == 0 else "customer")
    first = (await admin.get("/api/v1/users?q=CREW")).json()
    assert (first["total"], first["page"], first["per_page"], len(first["items"])) == (52, 1, 50, 50)
    assert first["items"][0]["username"] == "crew00" and first["items"][0]["email"] == "crew0@example.com"
    second = (await admin.get("/api/v1/users?q=crew&page=2")).json()
    assert [u["username"] for u in second["items"]] == ["crew50", "crew51"]
    staff = (await admin.get("/api/v1/users?role=staff")).json()
    assert [u["username"] for u in staff["items"]] == [f"crew{i}0" for i in range(6)]
    assert (await admin.get("/api/v1/users?q=crew4&role=staff")).json()["total"] == 1
    for bad, field in (("role=overlord", "role"), ("page=0", "page"), ("q=" + "x" * 33, "q"), ("q=%00", "q")):
        response = await admin.get(f"/api/v1/users?{bad}")
        assert response.status_code == 400 and response.json()["error"]["field"] == field, bad


async def test_leads_read_without_emails_and_change_nothing(app: LifespanManager, make_user: Any) -> None:
    lead = await make_user("lena", "lead")
    ada = await services.register("ada", PASSWORD, email="ada@example.com")
    listed = (await lead.get("/api/v1/users?q=ada")).json()["items"]
    assert listed[0]["username"] == "ada" and "email" not in listed[0]
    assert (await lead.patch(f"/api/v1/users/{ada.id}", {"role": "staff"})).status_code == 403
    assert (await lead.post(f"/api/v1/users/{ada.id}/password-reset")).status_code == 403
    async with browser(app.app) as page_browser:
        await log_in(page_browser, "lena")
        page = await page_browser.get("/admin/users")
        assert page.status_code == 200 and "ada" in page.text and "ada@example.com" not in page.text
        assert "only admins change roles" in page.text and 'action="/admin/users/' not in page.text


async def test_role_change_and_bad_input(app: LifespanManager, make_user: Any) -> None:
    admin = await make_user("root", "admin")
    ada = await services.register("ada", PASSWORD)
    changed = await admin.patch(f"/api/v1/users/{ada.id}", {"role": "expert"})
    assert changed.status_code == 200 and changed.json()["role"] == "expert"
    assert (await User.get(id=ada.id)).role == "expert"
    for bad, field in (({"role": "overlord"}, "role"), ({"is_active": "no"}, "is_active"), ({}, "role")):
        response = await admin.patch(f"/api/v1/users/{ada.id}", bad)
        assert response.status_code == 400 and response.json()["error"]["field"] == field, bad
    assert (await admin.patch("/api/v1/users/999999", {"role": "staff"})).status_code == 404


async def test_admins_cannot_demote_or_deactivate_themselves(app: LifespanManager, make_user: Any) -> None:
    admin = await make_user("root", "admin")
    me = admin.user["id"]
    assert (await admin.patch(f"/api/v1/users/{me}", {"role": "staff"})).status_code == 403
    assert (await admin.patch(f"/api/v1/users/{me}", {"is_active": False})).status_code == 403
    assert (await admin.patch(f"/api/v1/users/{me}", {"role": "admin", "is_active": True})).status_code == 200
    assert (await User.get(id=me)).role == "admin"


async def test_deactivation_ends_sessions_and_tokens_keeps_content_and_reactivation_revives_tokens_only(
    app: LifespanManager, make_user: Any, client: httpx.AsyncClient
) -> None:
    admin, ada = await make_user("root", "admin"), await make_user("ada")
    question = await forum.create_question(await User.get(id=ada.user["id"]), "How do I reset my card PIN?",
                                           "It was blocked.", [], jobs=None)
    async with browser(app.app) as laptop:
        await log_in(laptop, "ada")
        off = await admin.patch(f"/api/v1/users/{ada.user['id']}", {"is_active": False})
        assert off.status_code == 200 and off.json()["is_active"] is False
        assert (await laptop.get("/api/v1/me")).status_code == 401
        assert (await ada.get("/api/v1/me")).status_code == 401
        assert (await client.post("/api/v1/auth/login", json={"username": "ada", "password": PASSWORD})
                ).status_code == 401
        shown = await client.get(f"/api/v1/questions/{question.id}")
        assert shown.status_code == 200 and shown.json()["author"] == "ada"  # what they wrote stays
        assert (await admin.patch(f"/api/v1/users/{ada.user['id']}", {"is_active": True})).status_code == 200
        assert (await ada.get("/api/v1/me")).status_code == 200  # tokens work again ...
        assert (await laptop.get("/api/v1/me")).status_code == 401  # ... the old session does not


async def test_admin_page_changes_role_and_status(app: LifespanManager, make_user: Any) -> None:
    await make_user("root", "admin")
    ada = await services.register("ada", PASSWORD, email="ada@example.com")
    async with browser(app.app) as laptop:
        csrf = await log_in(laptop, "root")
        page = await laptop.get("/admin/users?q=ad")
        assert page.status_code == 200 and "ada@example.com" in page.text and 'href="/admin/users"' in page.text
        saved = await laptop.post(f"/admin/users/{ada.id}", data={"csrf_token": csrf, "role": "staff"})
        assert saved.status_code == 303 and saved.headers["location"] == "/admin/users?q=ada&done=saved"
        user = await User.get(id=ada.id)
        assert (user.role, user.is_active) == ("staff", False)  # the unticked "active" box deactivates
        bad = await laptop.post(f"/admin/users/{ada.id}", data={"csrf_token": csrf, "role": "overlord",
                                                                "is_active": "on"})
        assert bad.status_code == 400 and "role must be one of" in bad.text
        no_csrf = await laptop.post(f"/admin/users/{ada.id}", data={"role": "admin", "is_active": "on"})
        assert no_csrf.status_code == 403 and (await User.get(id=ada.id)).role == "staff"


async def test_last_seen_is_recorded_on_use_at_most_every_few_minutes(app: LifespanManager, make_user: Any) -> None:
    admin = await make_user("root", "admin")
    ada = await services.register("ada", PASSWORD)
    listed = (await admin.get("/api/v1/users?q=ada")).json()["items"]
    assert listed[0]["last_seen_at"] is None, "never signed in"
    token = await services.create_token(ada)
    assert (await admin.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    seen = (await User.get(id=ada.id)).last_seen_at
    assert seen is not None
    user = await User.get(id=ada.id)
    await services.mark_seen(user, now=seen + services.SEEN_EVERY / 2)
    assert (await User.get(id=ada.id)).last_seen_at == seen, "not written again within SEEN_EVERY"
    await services.mark_seen(user, now=seen + services.SEEN_EVERY)
    assert (await User.get(id=ada.id)).last_seen_at == seen + services.SEEN_EVERY
    shown = (await admin.get("/api/v1/users?q=ada")).json()["items"][0]["last_seen_at"]
    assert shown is not None
