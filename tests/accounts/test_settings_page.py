"""A user's own account: email, password (signing out other sessions), API tokens; pages and API."""

from __future__ import annotations

from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from itsdangerous import URLSafeTimedSerializer

from supportswarm.accounts import services
from supportswarm.accounts.models import ApiToken, User
from supportswarm.accounts.sessions import SessionSigner
from tests.accounts.helpers import PASSWORD, browser, csrf_of, log_in

NEW = "a brand new passphrase"


async def test_changing_the_password_signs_out_other_sessions_but_keeps_this_one_and_tokens(
    app: LifespanManager, make_user: Any
) -> None:
    ada = await make_user("ada")
    async with browser(app.app) as laptop, browser(app.app) as phone:
        csrf = await log_in(laptop, "ada")
        await log_in(phone, "ada")
        changed = await laptop.post("/settings/password", data={"csrf_token": csrf, "current_password": PASSWORD,
                                                                "new_password": NEW})
        assert changed.status_code == 303 and changed.headers["location"] == "/settings?done=password"
        assert "every other session" in (await laptop.get("/settings?done=password")).text  # this one carries on
        assert (await phone.get("/api/v1/me")).status_code == 401  # the other one is signed out
        assert (await phone.get("/settings")).status_code == 401
    assert (await ada.get("/api/v1/me")).status_code == 200  # bearer tokens stay
    async with browser(app.app) as other:
        assert (await other.post("/api/v1/auth/login", json={"username": "ada", "password": PASSWORD})
                ).status_code == 401
        assert (await other.post("/api/v1/auth/login", json={"username": "ada", "password": NEW})).status_code == 200


async def test_password_api_checks_the_current_password_and_the_new_one(app: LifespanManager, make_user: Any) -> None:
    ada = await make_user("ada")
    wrong = await ada.post("/api/v1/me/password", {"current_password": "not it at all", "new_password": NEW})
    assert wrong.status_code == 400 and wrong.json()["error"] | {"detail": ""} == {
        "code": "wrong_password", "field": "current_password", "detail": ""}
    short = await ada.post("/api/v1/me/password", {"current_password": PASSWORD, "new_password": "short"})
    assert short.status_code == 400 and short.json()["error"]["field"] == "new_password"
    missing = await ada.post("/api/v1/me/password", {"current_password": PASSWORD})
    assert missing.status_code == 400 and missing.json()["error"]["field"] == "new_password"
    ok = await ada.post("/api/v1/me/password", {"current_password": PASSWORD, "new_password": NEW})
    assert ok.status_code == 200 and "set-cookie" not in ok.headers  # a bearer call has no session to keep
    user = await User.get(username="ada")
    services.verify_password(user, NEW)
    assert user.session_generation == 1


async def test_cookie_password_change_reissues_this_sessions_cookie(app: LifespanManager, make_user: Any) -> None:
    await make_user("ada")
    async with browser(app.app) as laptop:
        csrf = await log_in(laptop, "ada")
        refused = await laptop.post("/api/v1/me/password", json={"current_password": PASSWORD, "new_password": NEW})
        assert refused.status_code == 403  # no CSRF token: refused like every unsafe cookie request
        ok = await laptop.post("/api/v1/me/password", json={"current_password": PASSWORD, "new_password": NEW},
                               headers={"X-CSRF-Token": csrf})
        assert ok.status_code == 200 and "ss_session=" in ok.headers["set-cookie"]
        assert (await laptop.get("/api/v1/me")).status_code == 200


async def test_wrong_current_password_on_the_page_is_a_400_with_the_form(app: LifespanManager,
                                                                         make_user: Any) -> None:
    await make_user("ada")
    async with browser(app.app) as laptop:
        csrf = await log_in(laptop, "ada")
        page = await laptop.post("/settings/password", data={"csrf_token": csrf, "current_password": "nope-nope",
                                                             "new_password": NEW})
        assert page.status_code == 400 and "the current password is wrong" in page.text
        assert 'id="current_password" name="current_password" type="password" autocomplete="current-password" ' \
               'required aria-invalid="true"' in page.text


async def test_email_by_api_and_page(app: LifespanManager, make_user: Any) -> None:
    ada = await make_user("ada")
    set_ = await ada.patch("/api/v1/me", {"email": "ada@example.com"})
    assert set_.status_code == 200 and set_.json()["user"]["email"] == "ada@example.com"
    assert (await ada.get("/api/v1/me")).json()["user"]["email"] == "ada@example.com"
    for bad in ({"email": "not-an-address"}, {"email": 7}, {}):
        response = await ada.patch("/api/v1/me", bad)
        assert response.status_code == 400 and response.json()["error"]["field"] == "email", bad
    assert (await ada.patch("/api/v1/me", {"email": None})).json()["user"]["email"] is None
    async with browser(app.app) as laptop:
        csrf = await log_in(laptop, "ada")
        saved = await laptop.post("/settings/email", data={"csrf_token": csrf, "email": "new@example.com"})
        assert saved.status_code == 303
        assert 'value="new@example.com"' in (await laptop.get("/settings")).text
        bad = await laptop.post("/settings/email", data={"csrf_token": csrf, "email": "nope"})
        assert bad.status_code == 400 and "email is not a valid address" in bad.text
        assert (await laptop.post("/settings/email", data={"email": "x@example.com"})).status_code == 403  # no CSRF
    assert (await User.get(username="ada")).email == "new@example.com"


async def test_tokens_created_listed_used_and_revoked_by_api(app: LifespanManager, make_user: Any,
                                                             client: httpx.AsyncClient) -> None:
    ada, bob = await make_user("ada"), await make_user("bob")
    created = await ada.post("/api/v1/me/tokens", {"name": "nightly export"})
    assert created.status_code == 201
    new = created.json()
    assert new["name"] == "nightly export" and new["token"].startswith("ss_") and new["last_used_at"] is None
    headers = {"Authorization": f"Bearer {new['token']}"}
    assert (await client.get("/api/v1/me", headers=headers)).json()["user"]["username"] == "ada"
    listed = (await ada.get("/api/v1/me/tokens")).json()["items"]
    mine = next(t for t in listed if t["id"] == new["id"])
    assert mine["last_used_at"] is not None and "token" not in mine  # the token itself is never shown again
    assert {t["name"] for t in listed} == {"signup", "nightly export"}
    assert (await bob.client.delete(f"/api/v1/me/tokens/{new['id']}", headers=bob.headers)).status_code == 404
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 200  # bob could not revoke it
    assert (await ada.client.delete(f"/api/v1/me/tokens/{new['id']}", headers=ada.headers)).status_code == 200
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 401
    assert (await ada.client.delete(f"/api/v1/me/tokens/{new['id']}", headers=ada.headers)).status_code == 404
    for bad in ({}, {"name": ""}, {"name": "x" * 65}, {"name": "two\nlines"}, {"name": 5}):
        response = await ada.post("/api/v1/me/tokens", bad)
        assert response.status_code == 400 and response.json()["error"]["field"] == "name", bad


async def test_tokens_on_the_settings_page(app: LifespanManager, make_user: Any, client: httpx.AsyncClient) -> None:
    await make_user("ada")
    async with browser(app.app) as laptop:
        csrf = await log_in(laptop, "ada")
        page = await laptop.post("/settings/tokens", data={"csrf_token": csrf, "name": "ci <script>"})
        assert page.status_code == 200 and "ci &lt;script&gt;" in page.text
        row = await ApiToken.get(name="ci <script>")
        token = page.text.split('id="new-token" readonly value="', 1)[1].split('"', 1)[0]
        assert (await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})).status_code == 200
        listing = (await laptop.get("/settings")).text
        assert "ci &lt;script&gt;" in listing and token not in listing  # shown once only
        revoked = await laptop.post(f"/settings/tokens/{row.id}/revoke", data={"csrf_token": csrf})
        assert revoked.status_code == 303
        assert (await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})).status_code == 401
        assert (await laptop.post("/settings/tokens", data={"csrf_token": csrf, "name": ""})).status_code == 400


async def test_settings_need_a_login_and_the_header_links_there(app: LifespanManager, make_user: Any) -> None:
    await make_user("ada")
    async with browser(app.app) as anonymous:
        assert (await anonymous.get("/settings")).status_code == 401
        assert 'href="/settings"' not in (await anonymous.get("/")).text
    async with browser(app.app) as laptop:
        await log_in(laptop, "ada")
        assert 'href="/settings"' in (await laptop.get("/")).text
        assert await csrf_of(laptop)


def test_cookies_from_before_generations_count_as_generation_zero() -> None:
    old = URLSafeTimedSerializer("k", salt="supportswarm-session").dumps({"u": 7, "c": "csrf"})
    session = SessionSigner("k").loads(old)
    assert session is not None and (session.user_id, session.generation) == (7, 0)
    assert SessionSigner("k").loads(URLSafeTimedSerializer("k", salt="supportswarm-session").dumps(
        {"u": 7, "c": "csrf", "g": "1"})) is None
