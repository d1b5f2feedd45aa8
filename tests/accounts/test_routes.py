from __future__ import annotations

from typing import Any

import httpx
import pytest

from supportswarm.accounts.models import User

SIGNUP = "/api/v1/auth/signup"
LOGIN = "/api/v1/auth/login"


async def test_signup_answers_user_and_token_and_sets_cookie(client: httpx.AsyncClient) -> None:
    response = await client.post(SIGNUP, json={"username": "ada", "password": "s3cret-pass", "email": "a@b.io"})
    assert response.status_code == 201
    body = response.json()
    assert body["user"]["username"] == "ada" and body["user"]["role"] == "customer"
    assert body["token"].startswith("ss_")
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    me = await client.get("/api/v1/me")
    assert me.json()["user"]["username"] == "ada"


async def test_password_is_stored_as_argon2_hash(client: httpx.AsyncClient) -> None:
    await client.post(SIGNUP, json={"username": "ada", "password": "s3cret-pass"})
    user = await User.get(username="ada")
    assert user.password_hash.startswith("$argon2") and "s3cret-pass" not in user.password_hash


async def test_login_with_right_and_wrong_password(client: httpx.AsyncClient) -> None:
    await client.post(SIGNUP, json={"username": "ada", "password": "s3cret-pass"})
    client.cookies.clear()
    bad = await client.post(LOGIN, json={"username": "ada", "password": "nope-nope"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "not_authenticated"
    good = await client.post(LOGIN, json={"username": "ADA", "password": "s3cret-pass"})
    assert good.status_code == 200
    token = good.json()["token"]
    client.cookies.clear()
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["user"]["username"] == "ada"


async def test_logout_clears_the_session(client: httpx.AsyncClient) -> None:
    signup = await client.post(SIGNUP, json={"username": "ada", "password": "s3cret-pass"})
    csrf = _csrf_from(client, signup)
    out = await client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert out.status_code == 200
    assert (await client.get("/api/v1/me")).status_code == 401


def _csrf_from(client: httpx.AsyncClient, response: httpx.Response) -> str:
    from itsdangerous import URLSafeTimedSerializer

    raw = client.cookies["ss_session"]
    data: dict[str, Any] = URLSafeTimedSerializer("test-secret", salt="supportswarm-session").loads(raw)
    return str(data["c"])


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "username"),
        ({"username": "ab", "password": "long-enough"}, "username"),
        ({"username": "has space", "password": "long-enough"}, "username"),
        ({"username": "x" * 33, "password": "long-enough"}, "username"),
        ({"username": "valid_name", "password": "short"}, "password"),
        ({"username": "valid_name", "password": "p" * 300}, "password"),
        ({"username": "valid_name", "password": 12345678}, "password"),
        ({"username": "valid_name", "password": "long-enough", "email": "not-an-email"}, "email"),
    ],
)
async def test_signup_rejects_bad_input_naming_the_field(
    client: httpx.AsyncClient, payload: dict[str, Any], field: str
) -> None:
    response = await client.post(SIGNUP, json=payload)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field
    assert await User.all().count() == 0


async def test_duplicate_username_is_a_conflict_case_insensitively(client: httpx.AsyncClient) -> None:
    await client.post(SIGNUP, json={"username": "ada", "password": "s3cret-pass"})
    client.cookies.clear()
    again = await client.post(SIGNUP, json={"username": "Ada", "password": "other-pass"})
    assert again.status_code == 409 and again.json()["error"]["field"] == "username"
    assert await User.all().count() == 1


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe\x00", b'"string"'])
async def test_malformed_bodies_are_400(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post(SIGNUP, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"


async def test_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(SIGNUP, content=b"{" + b" " * 400_000 + b"}",
                                 headers={"content-type": "application/json"})
    assert response.status_code == 413


async def test_cookie_session_needs_csrf_for_unsafe_requests(client: httpx.AsyncClient) -> None:
    signup = await client.post(SIGNUP, json={"username": "ada", "password": "s3cret-pass"})
    no_token = await client.post("/api/v1/auth/logout")
    assert no_token.status_code == 403 and no_token.json()["error"]["code"] == "csrf_failed"
    cross = await client.post("/api/v1/auth/logout", headers={"Origin": "https://evil.example",
                                                             "X-CSRF-Token": _csrf_from(client, signup)})
    assert cross.status_code == 403


async def test_signup_and_login_pages_work_with_forms(client: httpx.AsyncClient) -> None:
    page = await client.get("/signup")
    assert page.status_code == 200 and "Create your account" in page.text
    done = await client.post("/signup", data={"username": "bob", "password": "hunter2hunter2"})
    assert done.status_code == 303
    home = await client.get("/")
    assert "bob" in home.text
    client.cookies.clear()
    wrong = await client.post("/login", data={"username": "bob", "password": "bad-password"})
    assert wrong.status_code == 400 and "wrong username or password" in wrong.text
    right = await client.post("/login", data={"username": "bob", "password": "hunter2hunter2", "next": "//evil"})
    assert right.status_code == 303 and right.headers["location"] == "/"


async def test_form_post_with_session_needs_the_csrf_field(client: httpx.AsyncClient) -> None:
    await client.post("/signup", data={"username": "bob", "password": "hunter2hunter2"})
    response = await client.post("/logout", data={})
    assert response.status_code == 403


async def test_createuser_roles_and_profile_page(client: httpx.AsyncClient, make_user: Any) -> None:
    lead = await make_user("lena", role="lead")
    assert lead.user["role"] == "lead"
    page = await client.get("/users/lena")
    assert page.status_code == 200 and "lead" in page.text
    assert (await client.get("/users/nobody")).status_code == 404
