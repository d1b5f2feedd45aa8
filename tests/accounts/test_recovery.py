"""Password reset links: one use, one hour, the newest only; from an admin, the CLI, or a mail (real SMTP)."""

from __future__ import annotations

import asyncio
import hashlib
import re
import smtplib
import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from asgi_lifespan import LifespanManager

from embeddings import Embedder
from supportswarm import cli
from supportswarm.accounts import mail, recovery, services
from supportswarm.accounts.models import PasswordReset, User
from supportswarm.app import create_app
from supportswarm.db import ConnectionParams
from supportswarm.realtime.memory import MemoryBroker
from supportswarm.realtime.protocol import ACCOUNT_EVENT, ACCOUNTS_CHANNEL
from supportswarm.resources import Resources
from supportswarm.settings import Settings
from tests.accounts.helpers import PASSWORD, browser, log_in
from workers.registry import JOB_FUNCTIONS

NEW = "a brand new passphrase"
LINK = re.compile(r"https?://[^\s/]+/reset-password/[A-Za-z0-9_-]+")


async def _admin_link(admin: Any, user_id: int) -> str:
    response = await admin.post(f"/api/v1/users/{user_id}/password-reset")
    assert response.status_code == 201, response.text
    return str(response.json()["url"])


def _path(url: str) -> str:
    return "/reset-password/" + url.rsplit("/", 1)[1]


async def test_an_admin_link_works_once_signs_in_and_signs_out_other_sessions(
    app: LifespanManager, make_user: Any, client: httpx.AsyncClient
) -> None:
    admin, ada = await make_user("root", "admin"), await make_user("ada")
    url = await _admin_link(admin, ada.user["id"])
    assert url.startswith("http://testserver/reset-password/")  # no SUPPORTSWARM_PUBLIC_URL: the admin's address
    async with browser(app.app) as old, browser(app.app) as new:
        await log_in(old, "ada")
        form = await new.get(_path(url))
        assert form.status_code == 200 and "<strong>ada</strong>" in form.text
        assert (await new.post(_path(url), data={"password": "short"})).status_code == 400  # the link survives that
        done = await new.post(_path(url), data={"password": NEW})
        assert done.status_code == 303 and (await new.get("/api/v1/me")).json()["user"]["username"] == "ada"
        assert (await old.get("/api/v1/me")).status_code == 401
    async with browser(app.app) as someone:
        again = await someone.post(_path(url), data={"password": "another passphrase"})
        assert again.status_code == 400 and "invalid, used or expired" in again.text
    assert (await ada.get("/api/v1/me")).status_code == 200  # tokens stay
    assert (await client.post("/api/v1/auth/login", json={"username": "ada", "password": NEW})).status_code == 200


async def test_a_newer_link_an_expiry_or_a_password_change_kills_a_link(
    app: LifespanManager, make_user: Any, client: httpx.AsyncClient
) -> None:
    admin, ada = await make_user("root", "admin"), await make_user("ada")
    first = await _admin_link(admin, ada.user["id"])
    second = await _admin_link(admin, ada.user["id"])
    assert (await client.get(_path(first))).status_code == 400
    assert (await client.get(_path(second))).status_code == 200
    await PasswordReset.filter(user_id=ada.user["id"]).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert (await client.get(_path(second))).status_code == 400
    third = await _admin_link(admin, ada.user["id"])
    changed = await ada.post("/api/v1/me/password", {"current_password": PASSWORD, "new_password": NEW})
    assert changed.status_code == 200
    assert (await client.post(_path(third), data={"password": "another passphrase"})).status_code == 400
    assert (await client.get("/reset-password/x")).status_code == 400
    row = await PasswordReset.filter(user_id=ada.user["id"]).first()
    assert row is None  # nothing live is left behind


async def test_links_are_stored_hashed_and_not_for_deactivated_users(app: LifespanManager, make_user: Any) -> None:
    admin, ada = await make_user("root", "admin"), await make_user("ada")
    url = await _admin_link(admin, ada.user["id"])
    token = url.rsplit("/", 1)[1]
    row = await PasswordReset.get(user_id=ada.user["id"])
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() and token not in row.token_hash
    await admin.patch(f"/api/v1/users/{ada.user['id']}", {"is_active": False})
    assert (await recovery_status(app, _path(url))) == 400  # a deactivated user's link is dead
    refused = await admin.post(f"/api/v1/users/{ada.user['id']}/password-reset")
    assert refused.status_code == 409


async def recovery_status(app: LifespanManager, path: str) -> int:
    async with browser(app.app) as anonymous:
        return (await anonymous.get(path)).status_code


async def test_admin_page_shows_the_link(app: LifespanManager, make_user: Any) -> None:
    await make_user("root", "admin")
    ada = await services.register("ada", PASSWORD)
    async with browser(app.app) as laptop:
        csrf = await log_in(laptop, "root")
        page = await laptop.post(f"/admin/users/{ada.id}/reset-link", data={"csrf_token": csrf})
        assert page.status_code == 200 and "Reset link for ada" in page.text
        url = LINK.search(page.text)
        assert url is not None
        assert (await recovery_status(app, _path(url.group(0)))) == 200


def test_cli_prints_a_link_with_the_public_url(settings: Settings, pg_params: ConnectionParams,
                                               monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("SECRET_KEY", "test-secret")
    monkeypatch.setenv("SUPPORTSWARM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SUPPORTSWARM_PUBLIC_URL", "https://support.example.com/")
    # The root logger would write to pytest's captured stream after it closes; logging is not tested here.
    monkeypatch.setattr(cli, "configure_logging", lambda settings: None)
    assert cli.main(["createuser", "ada", "--password", PASSWORD]) == 0
    assert cli.main(["reset-link", "ada"]) == 0
    out = capsys.readouterr()
    url = out.out.strip().splitlines()[-1]
    assert url.startswith("https://support.example.com/reset-password/") and "one use" in out.err
    digest = hashlib.sha256(url.rsplit("/", 1)[1].encode()).hexdigest()

    async def stored() -> int:
        conn = await asyncpg.connect(pg_params.url())
        try:
            return int(await conn.fetchval("SELECT count(*) FROM password_resets WHERE token_hash = $1", digest))
        finally:
            await conn.close()

    assert asyncio.run(stored()) == 1
    assert cli.main(["reset-link", "nobody"]) == 2


# --- by mail, through a real SMTP server on loopback ------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.mails: list[Message] = []

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.mails.append(message_from_bytes(envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
async def mail_app(settings: Settings, embedder: Embedder, smtp: tuple[Inbox, int]) -> Any:
    mail_settings = replace(settings, smtp_url=f"smtp://127.0.0.1:{smtp[1]}", public_url="https://support.example.com",
                            mail_from="Support <support@example.com>")
    async with LifespanManager(create_app(mail_settings, job_functions=JOB_FUNCTIONS, embedder=embedder)) as manager:
        yield manager


async def _ask(app: LifespanManager, login: str) -> httpx.Response:
    async with browser(app.app) as anonymous:
        return await anonymous.post("/forgot-password", data={"login": login})


async def test_forgot_password_mails_a_link_and_reveals_nothing(mail_app: LifespanManager,
                                                                smtp: tuple[Inbox, int]) -> None:
    inbox, _port = smtp
    res: Resources = mail_app._state["resources"]
    await services.register("ada", PASSWORD, email="Ada@Example.com")
    await services.register("nomail", PASSWORD)
    off = await services.register("gone", PASSWORD, email="gone@example.com")
    await User.filter(id=off.id).update(is_active=False)
    async with browser(mail_app.app) as anonymous:
        page = await anonymous.get("/login")
        assert 'href="/forgot-password"' in page.text
        assert 'name="login"' in (await anonymous.get("/forgot-password")).text
    answers = [await _ask(mail_app, login) for login in ("ada", "nobody", "nomail", "gone@example.com")]
    await res.jobs.drain()
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1 and "a reset link is on its way" in answers[0].text
    assert len(inbox.mails) == 1  # only ada: the others do not exist, have no address, or are deactivated
    message = inbox.mails[0]
    assert (message["To"], message["From"]) == ("Ada@Example.com", "Support <support@example.com>")
    found = LINK.search(message.get_payload(decode=True).decode())  # type: ignore[union-attr]
    assert found is not None and found.group(0).startswith("https://support.example.com/reset-password/")
    async with browser(mail_app.app) as anonymous:
        done = await anonymous.post(_path(found.group(0)), data={"password": NEW})
        assert done.status_code == 303
    await _ask(mail_app, "ada@example.com")  # by address, any case
    await res.jobs.drain()
    assert len(inbox.mails) == 2


async def test_mail_is_rate_limited_per_ip_and_per_account(settings: Settings, embedder: Embedder,
                                                           smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    limited = replace(settings, rate_limits=True, smtp_url=f"smtp://127.0.0.1:{port}",
                      public_url="https://support.example.com")
    async with LifespanManager(create_app(limited, job_functions=JOB_FUNCTIONS, embedder=embedder)) as manager:
        res: Resources = manager._state["resources"]
        await services.register("ada", PASSWORD, email="ada@example.com")
        statuses = []
        for _ in range(6):
            statuses.append((await _ask(manager, "ada")).status_code)
            await res.jobs.drain()  # one at a time: a mail job already queued for ada would take no second one
    assert statuses == [200] * 5 + [429]  # 5 an hour per IP
    assert len(inbox.mails) == 3  # 3 mails an hour per account; the 4th and 5th answers sent nothing


async def test_without_smtp_the_page_says_to_ask_an_admin(app: LifespanManager, resources: Resources) -> None:
    await services.register("ada", PASSWORD, email="ada@example.com")
    assert "Ask an administrator" in (await _ask(app, "ada")).text
    async with browser(app.app) as anonymous:
        page = await anonymous.get("/forgot-password")
        assert "Ask an administrator" in page.text and 'name="login"' not in page.text
    assert await PasswordReset.all().count() == 0


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_smtp_login_on_loopback(app: LifespanManager) -> None:
    """Credentials in the URL log in; without TLS only because the server is on this machine."""
    inbox, port = Inbox(), _free_port()

    def check(server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"mailer", b"p@ss word")
        return AuthResult(success=ok)

    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=check, auth_require_tls=False,
                            auth_required=True)
    controller.start()
    try:
        ada = await services.register("ada", PASSWORD, email="ada@example.com")
        link = await recovery.issue_link(ada, base_url="https://support.example.com")
        message = recovery.reset_message(ada, link, sender="support@example.com")
        await mail.send(f"smtp://mailer:p%40ss%20word@127.0.0.1:{port}", message)
        assert len(inbox.mails) == 1
        with pytest.raises(smtplib.SMTPSenderRefused, match="530"):  # without the URL's credentials: refused
            await mail.send(f"smtp://127.0.0.1:{port}", message)
        with pytest.raises(mail.MailError):
            await mail.send("http://127.0.0.1:25", message)
    finally:
        controller.stop()


async def test_a_reset_tells_the_users_open_websockets_to_reconnect(app: LifespanManager) -> None:
    """Every session ends with a reset, so the sockets they opened must end too (accounts/live.py)."""
    broker = MemoryBroker()
    ada = await services.register("ada", PASSWORD)
    link = await recovery.issue_link(ada, base_url="https://support.example.com")
    token = link.url.rsplit("/", 1)[1]
    async with await broker.subscribe([ACCOUNTS_CHANNEL]) as sub:
        await recovery.reset_password(token, "a brand new password", broker=broker)
        async with asyncio.timeout(2):
            announced = await anext(aiter(sub))
    assert (announced.type, announced.data) == (ACCOUNT_EVENT, {"user_id": ada.id})
    await broker.close()
