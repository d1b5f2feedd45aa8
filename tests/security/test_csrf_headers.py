"""CSRF for cookie sessions (API and forms), cookie flags, security headers, and websocket Origin checks."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from httpx_ws import WebSocketDisconnect, WebSocketUpgradeError

from tests.conftest import Actor
from tests.security.room import open_socket
from tests.security.scene import PASSWORD

pytestmark = pytest.mark.timeout(120)


async def browser_login(client: httpx.AsyncClient, username: str) -> str:
    """Log in with the form, as a browser does; returns the CSRF token the pages carry."""
    response = await client.post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 303, response.text
    page = await client.get("/")
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert match, "pages of a logged-in user carry the CSRF token"
    return match.group(1)


@pytest.fixture
async def owner(make_user: Any) -> Actor:
    actor: Actor = await make_user("owner")
    return actor


async def question_id(owner: Actor) -> int:
    ask = await owner.post("/api/v1/questions", {"title": "Router keeps dropping wifi", "body": "", "force": True})
    assert ask.status_code == 201, ask.text
    return int(ask.json()["question"]["id"])


class TestCookieSessions:
    async def test_the_session_cookie_is_httponly_samesite_lax_and_secure_on_https(self, app: LifespanManager,
                                                                                   owner: Actor) -> None:
        for base, secure in (("http://testserver", False), ("https://testserver", True)):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app.app), base_url=base) as c:
                response = await c.post("/api/v1/auth/login", json={"username": "owner", "password": PASSWORD})
            cookie = response.headers["set-cookie"]
            flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
            assert {"httponly", "samesite", "path"} <= flags and "SameSite=Lax" in cookie, cookie
            assert ("secure" in flags) is secure, cookie

    async def test_unsafe_api_calls_need_the_csrf_header(self, client: httpx.AsyncClient, owner: Actor) -> None:
        qid = await question_id(owner)
        token = await browser_login(client, "owner")
        answer = {"body": "Update the router firmware."}
        missing = await client.post(f"/api/v1/questions/{qid}/answers", json=answer)
        wrong = await client.post(f"/api/v1/questions/{qid}/answers", json=answer, headers={"X-CSRF-Token": "x" * 32})
        for refused in (missing, wrong):
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
        right = await client.post(f"/api/v1/questions/{qid}/answers", json=answer, headers={"X-CSRF-Token": token})
        assert right.status_code == 201, right.text
        patch = await client.patch(f"/api/v1/questions/{qid}", json={"title": "Router keeps dropping the wifi",
                                                                      "body": ""})
        assert patch.status_code == 403, "PATCH is unsafe too"
        detail = (await client.get(f"/api/v1/questions/{qid}")).json()
        assert [a["body"] for a in detail["answers"]] == [answer["body"]], "refused requests changed nothing"

    async def test_forms_need_the_csrf_field(self, client: httpx.AsyncClient, owner: Actor) -> None:
        qid = await question_id(owner)
        token = await browser_login(client, "owner")
        refused = await client.post(f"/questions/{qid}/comments", data={"body": "no token"})
        assert refused.status_code == 403
        wrong = await client.post(f"/questions/{qid}/comments", data={"body": "bad token", "csrf_token": "nope"})
        assert wrong.status_code == 403
        done = await client.post(f"/questions/{qid}/comments", data={"body": "with token", "csrf_token": token})
        assert done.status_code == 303
        comments = (await client.get(f"/api/v1/questions/{qid}")).json()["comments"]
        assert [c["body"] for c in comments] == ["with token"]

    async def test_cross_site_origins_are_refused_even_with_the_token(self, client: httpx.AsyncClient,
                                                                      owner: Actor) -> None:
        qid = await question_id(owner)
        token = await browser_login(client, "owner")
        evil = {"Origin": "https://evil.example", "X-CSRF-Token": token}
        response = await client.post(f"/api/v1/questions/{qid}/comments", json={"body": "hi"}, headers=evil)
        assert response.status_code == 403
        same = await client.post(f"/api/v1/questions/{qid}/comments", json={"body": "hi"},
                                 headers={"Origin": "http://testserver", "X-CSRF-Token": token})
        assert same.status_code == 201

    async def test_login_and_signup_forms_refuse_cross_site_posts(self, client: httpx.AsyncClient,
                                                                  owner: Actor) -> None:
        """Login CSRF: another site must not log the visitor into an account it controls."""
        evil = {"Origin": "https://evil.example"}
        login = await client.post("/login", data={"username": "owner", "password": PASSWORD}, headers=evil)
        signup = await client.post("/signup", data={"username": "mallory", "password": PASSWORD}, headers=evil)
        assert (login.status_code, signup.status_code) == (403, 403)
        assert "set-cookie" not in login.headers and "set-cookie" not in signup.headers

    async def test_bearer_tokens_need_no_csrf_token(self, client: httpx.AsyncClient, owner: Actor) -> None:
        qid = await question_id(owner)
        response = await client.post(f"/api/v1/questions/{qid}/comments", json={"body": "scripts use bearer tokens"},
                                     headers=owner.headers | {"Origin": "https://elsewhere.example"})
        assert response.status_code == 201


CSP_PARTS = ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "base-uri 'self'",
             "form-action 'self'")


class TestSecurityHeaders:
    @pytest.mark.parametrize("url", ["/", "/api/v1/questions", "/api/v1/questions/999999", "/nowhere",
                                     "/static/css/app.css", "/login", "/openapi.json"])
    async def test_every_response_carries_them(self, client: httpx.AsyncClient, url: str) -> None:
        response = await client.get(url)
        csp = response.headers["content-security-policy"]
        assert all(part in csp for part in CSP_PARTS), csp
        script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
        assert "unsafe-inline" not in script_src and "unsafe-eval" not in script_src
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] in {"same-origin", "strict-origin-when-cross-origin", "no-referrer"}
        assert response.headers["x-frame-options"] == "DENY"

    async def test_error_answers_carry_them_too(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api/v1/auth/login", content=b"{not json", headers={"content-type":
                                                                                         "application/json"})
        assert response.status_code == 400 and "frame-ancestors 'none'" in response.headers["content-security-policy"]


class TestWebsocketOrigin:
    async def room(self, owner: Actor) -> int:
        qid = await question_id(owner)
        swarm = await owner.post(f"/api/v1/questions/{qid}/swarm")
        assert swarm.status_code in {200, 201}
        return int(swarm.json()["id"])

    async def handshake(self, app: LifespanManager, path: str, headers: dict[str, str]) -> str:
        """"accepted", or "refused" when the server closed before accepting (a real server answers 403)."""
        try:
            async with open_socket(app.app, path, headers):
                return "accepted"
        except Exception as exc:  # the transport wraps the refusal in exception groups
            root = _root(exc)
            assert isinstance(root, WebSocketUpgradeError | WebSocketDisconnect), repr(root)
            return "refused"

    async def test_cookie_sockets_from_other_sites_are_refused(self, app: LifespanManager, client: httpx.AsyncClient,
                                                               owner: Actor) -> None:
        swarm_id = await self.room(owner)
        await browser_login(client, "owner")
        cookie = {"Cookie": "; ".join(f"{k}={v}" for k, v in client.cookies.items())}
        for path in (f"/ws/swarms/{swarm_id}", "/ws/inbox"):
            assert await self.handshake(app, path, cookie | {"Origin": "https://evil.example"}) == "refused"
            assert await self.handshake(app, path, cookie) == "refused", "browsers always send Origin"
            assert await self.handshake(app, path, cookie | {"Origin": "http://testserver"}) == "accepted"
            assert await self.handshake(app, path, owner.headers) == "accepted", "scripts with a bearer token"


def _root(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
