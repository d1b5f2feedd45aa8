"""Authorization as a tested matrix: every route and websocket x every role -> the expected answer.

The matrix is checked against the app's own route list: a route nobody listed here fails
`test_every_route_is_in_the_matrix`, so a new endpoint cannot ship without a decision about who may
call it. Each cell runs on fresh objects owned by the `owner` (a customer), so the `customer` column is
"somebody else's object, guessed by id".

Statuses: HTML forms answer 303 on success; 401 = log in first; 403 = not yours / not your role.
Websockets: "ok" = the welcome frame; 4401 / 4403 = the close code after the error frame.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect
from starlette.routing import Mount, Route, WebSocketRoute

from supportswarm.app import create_app
from supportswarm.resources import Resources
from supportswarm.settings import Settings
from tests.security.room import open_socket
from tests.security.scene import PASSWORD, ROLES, Cast, Scene, make_cast

pytestmark = pytest.mark.timeout(180)


@dataclass(frozen=True)
class Call:
    target: str | None = None  # the Scene object whose id fills {id}
    body: dict[str, Any] = field(default_factory=dict)
    query: str = ""


# Columns: anonymous, customer, expert, staff, lead, admin, owner.
ALL_200 = (200,) * 7
LOGGED_IN = (401, 200, 200, 200, 200, 200, 200)
LOGGED_IN_201 = (401, 201, 201, 201, 201, 201, 201)
LOGGED_IN_303 = (401, 303, 303, 303, 303, 303, 303)
NOT_OWN = (401, 200, 200, 200, 200, 200, 403)  # votes: anyone but the author
NOT_OWN_303 = (401, 303, 303, 303, 303, 303, 403)
EDITORS = (401, 403, 403, 200, 200, 200, 200)  # the author or staff (staff, lead, admin)
EDITORS_303 = (401, 403, 403, 303, 303, 303, 303)
STAFF = (401, 403, 403, 200, 200, 200, 403)
STAFF_201 = (401, 403, 403, 201, 201, 201, 403)
STAFF_303 = (401, 403, 403, 303, 303, 303, 403)
LEADS = (401, 403, 403, 403, 200, 200, 403)
ADMIN = (401, 403, 403, 403, 403, 200, 403)
ADMIN_201 = (401, 403, 403, 403, 403, 201, 403)
ADMIN_202 = (401, 403, 403, 403, 403, 202, 403)
ADMIN_303 = (401, 403, 403, 403, 403, 303, 403)
OWN_ONLY = (401, 404, 404, 404, 404, 404, 200)  # a token: someone else's is "not found", like a missing one
OWN_ONLY_303 = (401, 404, 404, 404, 404, 404, 303)
ANYONE_400 = (400,) * 7  # anyone may use a reset link; a wrong one is bad input, whoever sends it
ASKER_ONLY = (401, 403, 403, 403, 403, 403, 200)  # a suggestion: only the customer it was offered to
ASKER_ONLY_201 = (401, 403, 403, 403, 403, 403, 201)
ASKER_ONLY_303 = (401, 403, 403, 403, 403, 403, 303)
MEMBERS = (401, 403, 200, 200, 200, 200, 200)  # a live swarm: the asker and helpers
MEMBERS_201 = (401, 403, 201, 201, 201, 201, 201)
MEMBERS_303 = (401, 403, 303, 303, 303, 303, 303)
NOT_OWN_201 = (401, 201, 201, 201, 201, 201, 403)  # flags: anyone signed in but the author

VOTE = {"value": 1}
ANSWER = {"body": "Restart the router, then try again."}
COMMENT = {"body": "Which model is it?"}
EDIT_Q = {"title": "An edited title that is long enough", "body": "edited body", "tags": "edited"}
EDIT_A = {"body": "An edited answer body."}
NEW_PASSWORD = {"current_password": PASSWORD, "new_password": PASSWORD}  # the same: later cells log in with it
HOOK = {"url": "http://127.0.0.1:9/hook", "description": "matrix"}
FLAG = {"reason": "spam"}

MATRIX: dict[tuple[str, str], tuple[Call, tuple[int, ...]]] = {
    # operations
    ("GET", "/healthz"): (Call(), ALL_200),
    ("GET", "/readyz"): (Call(), ALL_200),
    ("GET", "/metrics"): (Call(), ALL_200),
    ("GET", "/openapi.json"): (Call(), ALL_200),
    # accounts
    ("POST", "/api/v1/auth/signup"): (Call(body={"username": "$new_username", "password": PASSWORD}), (201,) * 7),
    ("POST", "/api/v1/auth/login"): (Call(body={"username": "$owner", "password": PASSWORD}), ALL_200),
    ("POST", "/api/v1/auth/logout"): (Call(), ALL_200),
    ("GET", "/api/v1/me"): (Call(), LOGGED_IN),
    ("GET", "/login"): (Call(), ALL_200),
    ("POST", "/login"): (Call(body={"username": "$owner", "password": PASSWORD}), (303,) * 7),
    ("GET", "/signup"): (Call(), ALL_200),
    ("POST", "/signup"): (Call(body={"username": "$new_username", "password": PASSWORD}), (303,) * 7),
    ("POST", "/logout"): (Call(), (303,) * 7),
    ("GET", "/users/{username}"): (Call(), ALL_200),
    # account settings and user administration
    ("PATCH", "/api/v1/me"): (Call(body={"email": "matrix@example.com"}), LOGGED_IN),
    ("POST", "/api/v1/me/password"): (Call(body=NEW_PASSWORD), LOGGED_IN),
    ("GET", "/api/v1/me/tokens"): (Call(), LOGGED_IN),
    ("POST", "/api/v1/me/tokens"): (Call(body={"name": "matrix"}), LOGGED_IN_201),
    ("DELETE", "/api/v1/me/tokens/{id:int}"): (Call("token"), OWN_ONLY),
    ("GET", "/settings"): (Call(), LOGGED_IN),
    ("POST", "/settings/email"): (Call(body={"email": "matrix@example.com"}), LOGGED_IN_303),
    ("POST", "/settings/password"): (Call(body=NEW_PASSWORD), LOGGED_IN_303),
    ("POST", "/settings/tokens"): (Call(body={"name": "matrix"}), LOGGED_IN),  # the page showing it once
    ("POST", "/settings/tokens/{id:int}/revoke"): (Call("token"), OWN_ONLY_303),
    ("GET", "/api/v1/users"): (Call(), LEADS),  # leads read the list; only admins change it
    ("PATCH", "/api/v1/users/{id:int}"): (Call("user", {"role": "expert"}), ADMIN),
    ("POST", "/api/v1/users/{id:int}/password-reset"): (Call("user"), ADMIN_201),
    ("GET", "/admin/users"): (Call(), LEADS),
    ("POST", "/admin/users/{id:int}"): (Call("user", {"role": "expert", "is_active": "on"}), ADMIN_303),
    ("POST", "/admin/users/{id:int}/reset-link"): (Call("user"), ADMIN),  # the page showing the link
    ("GET", "/forgot-password"): (Call(), ALL_200),
    ("POST", "/forgot-password"): (Call(body={"login": "$owner"}), ALL_200),  # the same answer for everyone
    ("GET", "/reset-password/{token:str}"): (Call(), ANYONE_400),
    ("POST", "/reset-password/{token:str}"): (Call(body={"password": PASSWORD}), ANYONE_400),
    # forum API
    ("GET", "/api/v1/questions"): (Call(), ALL_200),
    ("GET", "/api/v1/questions/{id:int}"): (Call("question"), ALL_200),
    ("PATCH", "/api/v1/questions/{id:int}"): (Call("question", EDIT_Q), EDITORS),
    ("POST", "/api/v1/questions/{id:int}/answers"): (Call("question", ANSWER), LOGGED_IN_201),
    ("POST", "/api/v1/questions/{id:int}/vote"): (Call("question", VOTE), NOT_OWN),
    ("POST", "/api/v1/questions/{id:int}/comments"): (Call("question", COMMENT), LOGGED_IN_201),
    ("GET", "/api/v1/questions/{id:int}/revisions"): (Call("question"), ALL_200),
    ("POST", "/api/v1/questions/{id:int}/duplicate"): (Call("question", {"duplicate_of": "$question"}), STAFF),
    ("PATCH", "/api/v1/answers/{id:int}"): (Call("answer", EDIT_A), EDITORS),
    ("POST", "/api/v1/answers/{id:int}/accept"): (Call("answer"), EDITORS),
    ("POST", "/api/v1/answers/{id:int}/vote"): (Call("answer", VOTE), NOT_OWN),
    ("POST", "/api/v1/answers/{id:int}/comments"): (Call("answer", COMMENT), LOGGED_IN_201),
    ("GET", "/api/v1/answers/{id:int}/revisions"): (Call("answer"), ALL_200),
    # forum pages
    ("GET", "/"): (Call(), ALL_200),
    ("GET", "/questions/{id:int}"): (Call("question"), ALL_200),
    ("POST", "/questions/{id:int}/answers"): (Call("question", ANSWER), LOGGED_IN_303),
    ("POST", "/questions/{id:int}/vote"): (Call("question", VOTE), NOT_OWN_303),
    ("POST", "/questions/{id:int}/comments"): (Call("question", COMMENT), LOGGED_IN_303),
    ("GET", "/questions/{id:int}/edit"): (Call("question"), EDITORS),
    ("POST", "/questions/{id:int}/edit"): (Call("question", EDIT_Q), EDITORS_303),
    ("POST", "/questions/{id:int}/duplicate"): (Call("question", {"duplicate_of": "$question"}), STAFF_303),
    ("POST", "/answers/{id:int}/accept"): (Call("answer"), EDITORS_303),
    ("POST", "/answers/{id:int}/vote"): (Call("answer", VOTE), NOT_OWN_303),
    ("POST", "/answers/{id:int}/comments"): (Call("answer", COMMENT), LOGGED_IN_303),
    ("GET", "/answers/{id:int}/edit"): (Call("answer"), EDITORS),
    ("POST", "/answers/{id:int}/edit"): (Call("answer", EDIT_A), EDITORS_303),
    ("GET", "/{kind:str}/{id:int}/revisions"): (Call("question"), ALL_200),
    # matching
    ("GET", "/api/v1/similar"): (Call(query="q=router+restart"), ALL_200),
    ("POST", "/api/v1/questions"): (Call(body={"title": "$title", "body": "details", "tags": ["wifi"]}),
                                    LOGGED_IN_201),
    ("POST", "/api/v1/suggestions/{id:int}/accept"): (Call("suggestion"), ASKER_ONLY),
    ("POST", "/api/v1/suggestions/{id:int}/reject"): (Call("suggestion"), ASKER_ONLY_201),
    ("GET", "/ask"): (Call(), ALL_200),
    ("POST", "/ask"): (Call(body={"title": "$title", "body": "details"}), LOGGED_IN_303),
    ("GET", "/ask/suggestions/{id:int}"): (Call("suggestion"), ASKER_ONLY),
    ("POST", "/suggestions/{id:int}/accept"): (Call("suggestion"), ASKER_ONLY_303),
    ("POST", "/suggestions/{id:int}/reject"): (Call("suggestion"), ASKER_ONLY_303),
    ("GET", "/api/v1/search"): (Call(query="q=router+restart"), ALL_200),  # open rooms: filtered, not refused
    ("GET", "/search"): (Call(query="q=router+restart"), ALL_200),
    # metrics
    ("GET", "/api/v1/metrics/summary"): (Call(), LEADS),
    ("GET", "/api/v1/metrics/trends"): (Call(), LEADS),
    ("GET", "/api/v1/metrics/export.csv"): (Call(), LEADS),
    ("GET", "/api/v1/metrics/emergent"): (Call(), LEADS),
    ("POST", "/api/v1/metrics/emergent/{id:int}/incident"): (Call("cluster"), STAFF_201),
    ("POST", "/api/v1/metrics/emergent/{id:int}/dismiss"): (Call("cluster"), STAFF),
    ("GET", "/dashboard"): (Call(), LEADS),
    ("POST", "/dashboard/emergent/{id:int}/incident"): (Call("cluster"), STAFF_303),
    ("POST", "/dashboard/emergent/{id:int}/dismiss"): (Call("cluster"), STAFF_303),
    # swarms
    ("POST", "/api/v1/questions/{id:int}/swarm"): (Call("question"), MEMBERS_201),
    ("GET", "/api/v1/swarms"): (Call(), LOGGED_IN),
    ("GET", "/api/v1/swarms/{id:int}"): (Call("swarm"), MEMBERS),
    ("POST", "/questions/{id:int}/swarm"): (Call("question"), MEMBERS_303),
    ("GET", "/swarms/{id:int}"): (Call("swarm"), MEMBERS),
    ("GET", "/inbox"): (Call(), LOGGED_IN),
    # webhooks
    ("GET", "/api/v1/webhooks"): (Call(), ADMIN),
    ("POST", "/api/v1/webhooks"): (Call(body=HOOK), ADMIN_201),
    ("GET", "/api/v1/webhooks/{id:int}"): (Call("webhook"), ADMIN),
    ("DELETE", "/api/v1/webhooks/{id:int}"): (Call("webhook"), ADMIN),
    ("POST", "/api/v1/webhooks/deliveries/{id:int}/redeliver"): (Call("delivery"), ADMIN_202),
    ("GET", "/admin/webhooks"): (Call(), ADMIN),
    ("POST", "/admin/webhooks"): (Call(body=HOOK), ADMIN_303),
    ("GET", "/admin/webhooks/{id:int}"): (Call("webhook"), ADMIN),
    ("POST", "/admin/webhooks/{id:int}/delete"): (Call("webhook"), ADMIN_303),
    ("POST", "/admin/webhooks/deliveries/{id:int}/redeliver"): (Call("delivery"), ADMIN_303),
    # moderation
    ("POST", "/api/v1/questions/{id:int}/flag"): (Call("question", FLAG), NOT_OWN_201),
    ("POST", "/api/v1/answers/{id:int}/flag"): (Call("answer", FLAG), NOT_OWN_201),
    ("POST", "/api/v1/comments/{id:int}/flag"): (Call("comment", FLAG), NOT_OWN_201),
    # a live room's message (by a staff helper): whoever may see the room, the asker (owner) included
    ("POST", "/api/v1/swarms/{swarm_id:int}/messages/{seq:int}/flag"): (Call("message", FLAG), MEMBERS_201),
    ("GET", "/api/v1/flags"): (Call(), STAFF),
    ("POST", "/api/v1/flags/{id:int}/resolve"): (Call("flag", {"action": "dismiss"}), STAFF),
    ("GET", "/admin/flags"): (Call(), STAFF),
    ("POST", "/admin/flags/{id:int}/resolve"): (Call("flag", {"action": "dismiss"}), STAFF_303),
}

OK = "ok"
WS_MATRIX: dict[str, tuple[str | None, tuple[int | str, ...]]] = {
    "/ws/swarms/{id:int}": ("swarm", (4401, 4403, OK, OK, OK, OK, OK)),
    "/ws/inbox": (None, (4401, OK, OK, OK, OK, OK, OK)),
}


def app_routes(app: Any) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, Route):
            found |= {(method, route.path) for method in route.methods or () if method != "HEAD"}
        elif isinstance(route, WebSocketRoute):
            found.add(("WS", route.path))
        else:
            assert isinstance(route, Mount) and route.path == "/static", f"unexpected route {route!r}"
    return found


def test_every_route_is_in_the_matrix(settings: Settings) -> None:
    listed = set(MATRIX) | {("WS", path) for path in WS_MATRIX}
    routes = app_routes(create_app(settings))
    assert sorted(routes - listed) == [], "routes without an authorization decision: add them to MATRIX"
    assert sorted(listed - routes) == [], "MATRIX lists routes the app no longer has"
    assert all(len(expected) == len(ROLES) for _call, expected in MATRIX.values())


# --- running one cell ---------------------------------------------------------------------------------------


async def _value(raw: Any, scene: Scene) -> Any:
    if not isinstance(raw, str) or not raw.startswith("$"):
        return raw
    if raw == "$owner":
        return scene.cast.owner.username
    if raw == "$new_username":
        return f"new{secrets.token_hex(6)}"
    if raw == "$title":
        return f"A brand new problem {secrets.token_hex(6)}"
    return await scene.make(raw[1:])


async def request_cell(client: httpx.AsyncClient, scene: Scene, role: str, method: str, path: str,
                       call: Call) -> httpx.Response:
    url = path.replace("{username}", scene.cast.owner.username).replace("{kind:str}", "questions")
    url = url.replace("{token:str}", "no-such-reset-link-" + secrets.token_hex(8))
    if call.target is not None:  # a room message is `{swarm_id}/messages/1`: `message` makes the swarm
        made = str(await scene.make(call.target))
        url = url.replace("{id:int}", made).replace("{swarm_id:int}", made).replace("{seq:int}", "1")
    if call.query:
        url += "?" + call.query
    body = {k: await _value(v, scene) for k, v in call.body.items()}
    kwargs: dict[str, Any] = {"headers": scene.cast.headers(role)}
    if method in {"POST", "PATCH", "PUT"}:
        kwargs["json" if path.startswith("/api/") else "data"] = body
    return await client.request(method, url, **kwargs)


@pytest.fixture
async def cast(app: LifespanManager) -> Cast:
    return await make_cast()


async def test_http_matrix(client: httpx.AsyncClient, cast: Cast, resources: Resources) -> None:
    """One test for all roles (each cell on fresh objects): the app starts once instead of seven times."""
    scene = Scene(cast, resources)
    wrong = []
    for role in ROLES:
        column = ROLES.index(role)
        for (method, path), (call, expected) in MATRIX.items():
            client.cookies.clear()  # login and signup set a session cookie; each cell authenticates on its own
            response = await request_cell(client, scene, role, method, path, call)
            if response.status_code != expected[column]:
                wrong.append(f"{role}: {method} {path}: expected {expected[column]}, got {response.status_code} "
                             f"{response.text[:160]!r}")
    assert wrong == []


# --- websockets ---------------------------------------------------------------------------------------------


async def ws_outcome(app: Any, path: str, headers: dict[str, str]) -> int | str:
    """"ok" after a welcome frame, else the close code the server chose."""
    async with open_socket(app, path, headers) as ws:
        try:
            if path.startswith("/ws/swarms/"):
                await ws.send_text(json.dumps({"type": "hello", "last_seq": 0}))
            while True:
                frame = json.loads(await ws.receive_text(timeout=5))
                if frame["type"] == "welcome":
                    return OK
        except WebSocketDisconnect as exc:
            return int(exc.code)


async def test_websocket_matrix(app: LifespanManager, cast: Cast, resources: Resources) -> None:
    scene = Scene(cast, resources)
    for role in ROLES:
        column = ROLES.index(role)
        got = {}
        for path, (target, _expected) in WS_MATRIX.items():
            url = path.replace("{id:int}", str(await scene.make(target))) if target else path
            got[path] = await ws_outcome(app.app, url, cast.headers(role))
        assert got == {path: expected[column] for path, (_target, expected) in WS_MATRIX.items()}, role


# Every room action by every role that got in: (frame sent, what the sender gets back).
ROOM_STEPS: list[tuple[str, dict[str, Any]]] = [
    ("say", {"type": "say", "client_msg_id": "m1", "body": "first"}),
    ("typing", {"type": "typing"}),
    ("say", {"type": "say", "client_msg_id": "m2", "body": "second"}),
    ("mark_solution", {"type": "mark_solution", "seq": 2}),
    ("say", {"type": "say", "client_msg_id": "m3", "body": "too late"}),
    ("leave", {"type": "leave"}),
]
JOINED = ["message", None, "message", "resolved", "error:room_closed", "closed:1000"]
ROOM_ACTIONS: dict[str, list[str | None] | int] = {
    "anonymous": 4401, "customer": 4403, "expert": JOINED, "staff": JOINED, "lead": JOINED, "admin": JOINED,
    "owner": JOINED,
}
REPLIES = {"say": {"message", "error"}, "mark_solution": {"resolved", "error"}}


async def room_actions(app: Any, swarm_id: int, headers: dict[str, str]) -> list[str | None] | int:
    async with open_socket(app, f"/ws/swarms/{swarm_id}", headers) as ws:
        try:
            await ws.send_text(json.dumps({"type": "hello", "last_seq": 0}))
            while json.loads(await ws.receive_text(timeout=5))["type"] != "welcome":
                pass
        except WebSocketDisconnect as exc:
            return int(exc.code)
        return [await _step(ws, name, frame) for name, frame in ROOM_STEPS]


async def _step(ws: AsyncWebSocketSession, name: str, frame: dict[str, Any]) -> str | None:
    await ws.send_text(json.dumps(frame))
    if name not in REPLIES and name != "leave":
        return None  # no reply; the next say getting its message (not an error) shows it was accepted
    try:
        while True:
            reply = json.loads(await ws.receive_text(timeout=5))
            if reply["type"] in REPLIES.get(name, {"error"}):
                return f"error:{reply['code']}" if reply["type"] == "error" else str(reply["type"])
    except WebSocketDisconnect as exc:
        return f"closed:{exc.code}"


async def test_room_actions_matrix(app: LifespanManager, cast: Cast, resources: Resources) -> None:
    scene = Scene(cast, resources)
    got = {role: await room_actions(app.app, await scene.make("swarm"), cast.headers(role)) for role in ROLES}
    assert got == ROOM_ACTIONS
