"""Secrets and passwords never reach the logs: every record of signup, login (right, wrong, locked out),
token and cookie use is captured at DEBUG (the database driver's query log included) and searched, as
plain text and as the JSON lines production writes, for the password, the tokens, the session cookie,
the CSRF token and SECRET_KEY."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from supportswarm.db import ConnectionParams
from supportswarm.ops import TEXT_FORMAT, JsonFormatter
from supportswarm.settings import Settings

SECRET_KEY = "logging-test-secret-key-0123456789"
PASSWORD = "Tr0ub4dor&3-horse-staple"
WRONG = "hunter2-a-wrong-guess"


@pytest.fixture
def settings(pg_params: ConnectionParams, tmp_path: Path) -> Settings:
    return Settings(database_url=pg_params.url(), secret_key=SECRET_KEY, data_dir=tmp_path, rate_limits=True)


def logged_text(records: list[logging.LogRecord]) -> str:
    text, json_lines = logging.Formatter(TEXT_FORMAT), JsonFormatter()
    return "\n".join(f"{text.format(r)}\n{json_lines.format(r)}\n{r.args!r}" for r in records)


async def test_secrets_and_passwords_are_never_logged(client: httpx.AsyncClient,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    replies: list[httpx.Response] = []

    async def call(method: str, url: str, **kw: object) -> httpx.Response:
        response = await client.request(method, url, **kw)  # type: ignore[arg-type]
        replies.append(response)
        return response

    signup = await call("POST", "/api/v1/auth/signup", json={"username": "alice", "password": PASSWORD,
                                                              "email": "alice@example.com"})
    assert signup.status_code == 201
    cookie = client.cookies["ss_session"]
    csrf = (await call("GET", "/")).text.split('name="csrf-token" content="')[1].split('"')[0]
    await call("POST", "/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    await call("POST", "/api/v1/auth/logout")  # no CSRF token: refused
    client.cookies.clear()
    login = await call("POST", "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    token = login.json()["token"]
    client.cookies.clear()
    await call("POST", "/api/v1/auth/signup", json={"username": "bob", "password": WRONG[:5]})  # too short
    for _ in range(7):  # wrong passwords until the account is locked for this address
        await call("POST", "/api/v1/auth/login", json={"username": "alice", "password": WRONG})
    await call("POST", "/login", data={"username": "alice", "password": WRONG})
    me = await call("GET", "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    await call("GET", "/api/v1/me", headers={"Authorization": f"Bearer {token[:-4]}XXXX"})
    assert [r.status_code for r in replies[-4:]] == [429, 429, 200, 401], "the lockout path was exercised"

    assert any(r.name.startswith("tortoise") for r in caplog.records), "the capture sees the query log"
    logged = logged_text(caplog.records)
    for secret in (PASSWORD, WRONG, WRONG[:5], token, signup.json()["token"], cookie, csrf, SECRET_KEY):
        assert secret not in logged
    for reply in replies:  # and no answer repeats a password either
        assert PASSWORD not in reply.text and WRONG not in reply.text


def test_settings_and_connection_params_hide_secrets_in_their_repr() -> None:
    """Reprs end up in tracebacks, error reports and debug prints."""
    assert SECRET_KEY not in repr(Settings(secret_key=SECRET_KEY))
    assert "pg-password-123" not in repr(ConnectionParams("db", 5432, "app", "pg-password-123", "app"))
