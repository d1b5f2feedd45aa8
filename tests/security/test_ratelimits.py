"""Rate limits (429 + Retry-After) and login backoff, on the in-process broker and on Redis.

The suite's `settings` run without limits; here they are on. Budgets are shrunk with monkeypatch where a
test is about the mechanism (counting, keys, pages vs API), and left as configured where it is about
the configured table (signup, login backoff).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis import Redis
from starlette.routing import Route

from embeddings import Embedder
from supportswarm.app import create_app
from supportswarm.db import ConnectionParams
from supportswarm.errors import RateLimited
from supportswarm.ratelimit import LIMITS, LOGIN_TIERS, ROUTE_BUCKETS, Limit, LoginBackoff
from supportswarm.realtime.broker import Broker
from supportswarm.realtime.memory import MemoryBroker
from supportswarm.realtime.redis import RedisBroker
from supportswarm.settings import Settings
from tests.conftest import REDIS_URL, Actor
from tests.security.room import join
from workers.registry import JOB_FUNCTIONS

pytestmark = pytest.mark.timeout(120)
PASSWORD = "correct horse battery"


@pytest.fixture(params=["memory", "redis"])
def settings(request: pytest.FixtureRequest, pg_params: ConnectionParams, tmp_path: Path) -> Iterator[Settings]:
    """Limits on; with Redis, a namespace of its own so counters start at zero (deleted afterwards)."""
    namespace = f"sstest-rl-{uuid.uuid4().hex[:10]}:"
    redis = request.param == "redis"
    yield Settings(database_url=pg_params.url(), secret_key="test-secret", data_dir=tmp_path, rate_limits=True,
                   redis_url=REDIS_URL if redis else None, redis_namespace=namespace)
    if redis:
        client = Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{namespace}*"):
            client.delete(key)
        client.close()


def client_at(app: LifespanManager, ip: str) -> httpx.AsyncClient:
    """A script at `ip`: it keeps no cookies (signup and login set one), so it never needs a CSRF token."""
    transport = httpx.ASGITransport(app=app.app, client=(ip, 40000))
    client = httpx.AsyncClient(transport=transport, base_url="http://testserver")

    async def forget_cookies(response: httpx.Response) -> None:
        client.cookies.clear()

    client.event_hooks = {"response": [forget_cookies]}
    return client


def assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) >= 1
    if response.headers["content-type"].startswith("application/json"):
        assert response.json()["error"]["code"] == "rate_limited"


async def test_signup_is_limited_per_address(app: LifespanManager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(LIMITS, "signup", Limit(3, 3600))  # fewer password hashes to compute
    budget = 3
    async with client_at(app, "10.0.0.1") as one, client_at(app, "10.0.0.2") as two:
        for i in range(budget):
            response = await one.post("/api/v1/auth/signup", json={"username": f"user{i}", "password": PASSWORD})
            assert response.status_code == 201, response.text
        assert_limited(await one.post("/api/v1/auth/signup", json={"username": "onemore", "password": PASSWORD}))
        assert_limited(await one.post("/signup", data={"username": "viaform", "password": PASSWORD}))
        other = await two.post("/api/v1/auth/signup", json={"username": "elsewhere", "password": PASSWORD})
        assert other.status_code == 201, "another address has its own budget"


async def test_login_backoff_locks_one_account_from_one_address(app: LifespanManager) -> None:
    allowed = LOGIN_TIERS[0].failures
    async with client_at(app, "10.0.0.1") as one, client_at(app, "10.0.0.2") as two:
        for name in ("victim", "bystander"):
            assert (await one.post("/api/v1/auth/signup", json={"username": name, "password": PASSWORD})).status_code \
                == 201
        for _ in range(allowed):
            wrong = await one.post("/api/v1/auth/login", json={"username": "victim", "password": "guess-guess"})
            assert wrong.status_code == 401
        assert_limited(await one.post("/api/v1/auth/login", json={"username": "victim", "password": "guess-guess"}))
        right = await one.post("/api/v1/auth/login", json={"username": "Victim", "password": PASSWORD})
        assert_limited(right)  # while locked, even the right password is refused: a guess is not confirmed
        assert "token" not in right.text
        form = await one.post("/login", data={"username": "victim", "password": PASSWORD})
        assert_limited(form)
        assert "text/html" in form.headers["content-type"]
        assert (await one.post("/api/v1/auth/login", json={"username": "bystander", "password": PASSWORD})) \
            .status_code == 200, "other accounts from the same address are not locked"
        assert (await two.post("/api/v1/auth/login", json={"username": "victim", "password": PASSWORD})) \
            .status_code == 200, "the owner logging in from elsewhere is not locked out"


async def test_replicas_share_the_counters(settings: Settings, app: LifespanManager) -> None:
    """What one replica counted, another replica's broker sees (Redis); in-process counters are per process."""
    async with client_at(app, "10.0.0.1") as one:
        assert (await one.post("/api/v1/auth/signup", json={"username": "victim", "password": PASSWORD})) \
            .status_code == 201
        for _ in range(LOGIN_TIERS[0].failures):
            wrong = await one.post("/api/v1/auth/login", json={"username": "victim", "password": "nope-nope"})
            assert wrong.status_code == 401
    replica: Broker = (RedisBroker.from_url(REDIS_URL, namespace=settings.redis_namespace) if settings.redis_url
                       else MemoryBroker())
    try:
        if settings.redis_url:
            with pytest.raises(RateLimited):
                await LoginBackoff(replica, "victim", "10.0.0.1").spend()
        else:
            await LoginBackoff(replica, "victim", "10.0.0.1").spend()
    finally:
        await replica.close()


@pytest.mark.parametrize("settings", ["memory"], indirect=True)  # the mechanism; Redis runs cover signup/login
class TestPerUserBuckets:
    @pytest.fixture(autouse=True)
    def small_budgets(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for bucket in ("ask", "answer", "comment", "vote", "room_message"):
            monkeypatch.setitem(LIMITS, bucket, Limit(2, 600))

    @pytest.fixture
    async def actors(self, app: LifespanManager) -> AsyncIterator[dict[str, Actor]]:
        async with client_at(app, "10.0.0.9") as c:
            actors = {}
            for name in ("asker", "helper", "other"):
                signup = await c.post("/api/v1/auth/signup", json={"username": name, "password": PASSWORD})
                data = signup.json()
                actors[name] = Actor(c, data["user"], data["token"])
            yield actors

    async def test_answers_votes_and_comments_count_per_user_api_and_forms_together(
            self, actors: dict[str, Actor]) -> None:
        asker, helper, other = actors["asker"], actors["helper"], actors["other"]
        q = (await asker.post("/api/v1/questions", {"title": "Printer prints blank pages", "body": "",
                                                    "force": True})).json()["question"]["id"]
        assert (await helper.post(f"/api/v1/questions/{q}/answers", {"body": "Check the toner."})).status_code == 201
        form = await helper.client.post(f"/questions/{q}/answers", data={"body": "And the drum."},
                                        headers=helper.headers)
        assert form.status_code == 303
        assert_limited(await helper.post(f"/api/v1/questions/{q}/answers", {"body": "Third answer."}))
        page = await helper.client.post(f"/questions/{q}/answers", data={"body": "Fourth."}, headers=helper.headers)
        assert_limited(page)
        assert (await other.post(f"/api/v1/questions/{q}/answers", {"body": "Other user."})).status_code == 201
        for url, body, ok in ((f"/api/v1/questions/{q}/comments", {"body": "Which model?"}, 201),
                              (f"/api/v1/questions/{q}/vote", {"value": 1}, 200)):
            assert [(await helper.post(url, body)).status_code for _ in range(3)] == [ok, ok, 429]

    async def test_asking_is_limited(self, actors: dict[str, Actor]) -> None:
        asker = actors["asker"]
        statuses = [(await asker.post("/api/v1/questions", {"title": f"Problem number {i} with the app", "body": "",
                                                            "force": True})).status_code for i in range(3)]
        assert statuses == [201, 201, 429]
        form = await asker.client.post("/ask", data={"title": "One more problem here", "body": ""},
                                       headers=asker.headers)
        assert_limited(form)

    async def test_room_messages_are_limited_per_user_over_all_connections(
            self, app: LifespanManager, actors: dict[str, Actor]) -> None:
        asker = actors["asker"]
        q = (await asker.post("/api/v1/questions", {"title": "Card declined at the till", "body": "",
                                                    "force": True})).json()["question"]["id"]
        swarm_id = (await asker.post(f"/api/v1/questions/{q}/swarm")).json()["id"]
        async with join(app.app, swarm_id, asker.headers) as first, join(app.app, swarm_id, asker.headers) as second:
            replies = [await room.say(f"m{i}", f"message {i}") for i, room in enumerate((first, second, second))]
            assert [r["type"] for r in replies] == ["message", "message", "error"]
            assert replies[2]["code"] == "rate_limited" and replies[2]["retry_after"] > 0


def test_every_limited_route_exists_and_has_a_budget() -> None:
    app = create_app(Settings(database_url="postgresql://unused/db", secret_key="unused"))  # routes only, no I/O
    names = {(method, route.name) for route in app.routes if isinstance(route, Route) for method in route.methods or ()}
    assert set(ROUTE_BUCKETS) <= names, "ROUTE_BUCKETS names a route the app does not have"
    assert set(ROUTE_BUCKETS.values()) <= set(LIMITS)
    assert {"signup", "login", "ask", "answer", "vote", "comment", "room_message"} <= set(LIMITS)


async def test_login_lockouts_grow_while_guessing_goes_on() -> None:
    """The backoff on a controlled clock: a guesser who waits out every lock meets longer and longer ones."""
    now = [0.0]
    backoff = LoginBackoff(MemoryBroker(clock=lambda: now[0]), "victim", "10.0.0.1")
    failures = 0
    waits: list[float] = []
    while not waits or waits[-1] < 3600:
        try:
            await backoff.spend()  # the attempt
            await backoff.spend()  # its failure
            failures += 1
            now[0] += 1.0
        except RateLimited as exc:
            waits.append(exc.retry_after)
            now[0] += exc.retry_after  # wait out the lock, then guess on
    assert waits[0] <= LOGIN_TIERS[0].window_s
    assert max(waits) > LOGIN_TIERS[1].window_s, waits
    assert failures < LOGIN_TIERS[-1].failures, "at most this many guesses per day"


async def test_disabled_limits_let_everything_through(pg_params: ConnectionParams, tmp_path: Path,
                                                      embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(LIMITS, "signup", Limit(1, 600))
    settings = Settings(database_url=pg_params.url(), secret_key="test-secret", data_dir=tmp_path, rate_limits=False)
    async with LifespanManager(create_app(settings, job_functions=JOB_FUNCTIONS, embedder=embedder)) as app, \
            client_at(app, "10.0.0.1") as c:
        statuses = [(await c.post("/api/v1/auth/signup", json={"username": f"load{i}", "password": PASSWORD}))
                    .status_code for i in range(3)]
    assert statuses == [201, 201, 201]
