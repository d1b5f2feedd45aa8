"""Fixtures that start the real thing: PostgreSQL with pgvector (embedded unless
SUPPORTSWARM_TEST_DATABASE_URL is set) and Redis (SUPPORTSWARM_TEST_REDIS_URL, default the
local server). Each test starts from empty tables."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from embeddings import Embedder, HashingEmbedder
from supportswarm.accounts import services as accounts
from supportswarm.app import create_app
from supportswarm.db import ConnectionParams, EmbeddedPostgres, ensure_database, migrate, parse_database_url
from supportswarm.resources import Resources
from supportswarm.settings import Settings
from workers.registry import JOB_FUNCTIONS

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
TEST_DATABASE = "supportswarm_test"
REDIS_URL = os.environ.get("SUPPORTSWARM_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


@pytest.fixture(scope="session")
def pg_params(tmp_path_factory: pytest.TempPathFactory) -> ConnectionParams:
    url = os.environ.get("SUPPORTSWARM_TEST_DATABASE_URL")
    if url:
        params = parse_database_url(url)
    else:
        server = EmbeddedPostgres(tmp_path_factory.mktemp("pg"))
        base = server.start()
        params = ConnectionParams(base.host, base.port, base.user, base.password, TEST_DATABASE)

    async def prepare() -> None:
        await ensure_database(params)
        await migrate(params)

    asyncio.run(prepare())
    return params


@pytest.fixture(autouse=True)
async def clean_database(request: pytest.FixtureRequest) -> None:
    if "pg_params" not in request.fixturenames:
        return
    params: ConnectionParams = request.getfixturevalue("pg_params")
    conn = await asyncpg.connect(params.url())
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
        )
        names = ", ".join(f'"{t["tablename"]}"' for t in tables)
        await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


@pytest.fixture
def settings(pg_params: ConnectionParams, tmp_path: Path) -> Settings:
    return Settings(database_url=pg_params.url(), secret_key="test-secret", data_dir=tmp_path, rate_limits=False)


@pytest.fixture
def embedder() -> Embedder:
    """Plumbing tests use the deterministic embedder; matching-quality tests ask for `real_embedder`."""
    return HashingEmbedder()


@pytest.fixture(scope="session")
def real_embedder() -> Embedder:
    from embeddings import load_embedder

    return load_embedder()


@pytest.fixture
async def app(settings: Settings, embedder: Embedder) -> AsyncIterator[LifespanManager]:
    """The application with its lifespan running; `app.app` is what a server would call."""
    async with LifespanManager(create_app(settings, job_functions=JOB_FUNCTIONS, embedder=embedder)) as manager:
        yield manager


@pytest.fixture
def resources(app: LifespanManager) -> Resources:
    # asgi-lifespan keeps the lifespan state (the app's State) in `_state`.
    res: Resources = app._state["resources"]
    return res


@pytest.fixture
async def client(app: LifespanManager) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app.app), base_url="http://testserver") as c:
        yield c


class Actor:
    """A signed-up user driving the API with a bearer token."""

    def __init__(self, client: httpx.AsyncClient, user: dict[str, Any], token: str) -> None:
        self.client = client
        self.user = user
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self.client.get(url, headers=self.headers, **kw)

    async def post(self, url: str, json: Any = None, **kw: Any) -> httpx.Response:
        return await self.client.post(url, json=json if json is not None else {}, headers=self.headers, **kw)

    async def patch(self, url: str, json: Any = None) -> httpx.Response:
        return await self.client.patch(url, json=json, headers=self.headers)


@pytest.fixture
def make_user(client: httpx.AsyncClient) -> Any:
    async def make(username: str, role: str = "customer", password: str = "correct horse battery") -> Actor:
        response = await client.post("/api/v1/auth/signup", json={"username": username, "password": password})
        assert response.status_code == 201, response.text
        client.cookies.clear()
        data = response.json()
        if role != "customer":
            await accounts.set_role(username, role)
            data["user"]["role"] = role
        return Actor(client, data["user"], data["token"])

    return make


async def fresh_database(base: ConnectionParams, name: str) -> ConnectionParams:
    """An empty database `name` on the server of `base`, dropped first if a former run left it."""
    params = ConnectionParams(base.host, base.port, base.user, base.password, name)
    admin = await asyncpg.connect(base.url("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
    await ensure_database(params)
    return params
