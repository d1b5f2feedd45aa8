"""The compose.yaml topology as local processes: one PostgreSQL, one Redis, `migrate`, two `serve`, one `worker`.

A full story goes through both replicas: a question asked on A opens a swarm; the worker embeds it; members
on A and B chat through Redis; marking the solution resolves it; a similar ask on B is answered by that
solution (the suggestion rests on the worker's embedding); the lead's metrics show it all; then replica A
is stopped gracefully and its room member, told to reconnect, resumes on B without losing anything.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from supportswarm.db import ConnectionParams
from tests.conftest import fresh_database
from tests.ops.conftest import RedisProcess, free_port, wait_for
from tests.ops.procs import CLI, ROOT, Member, Proc, join, running, spawn, spawn_serve, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
PASSWORD = "correct horse battery"
DATABASE = "supportswarm_topology"


@dataclass
class Topology:
    a: Proc
    b: Proc
    worker: Proc
    db: ConnectionParams


def _cli(env: dict[str, str], *args: str) -> None:
    """A one-shot command (like compose's `migrate` service); fails the test with its output."""
    done = subprocess.run([*CLI, *args], cwd=ROOT, env=os.environ | env, capture_output=True, timeout=90)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


@pytest.fixture
async def topology(pg_params: ConnectionParams, redis_server: RedisProcess, workdir: Path) -> AsyncIterator[Topology]:
    db = await fresh_database(pg_params, DATABASE)
    env = {"DATABASE_URL": db.url(), "REDIS_URL": redis_server.url, "SECRET_KEY": "topology-secret",
           "SUPPORTSWARM_DATA_DIR": str(workdir), "SUPPORTSWARM_REDIS_NAMESPACE": f"topo-{uuid.uuid4().hex[:8]}:",
           "SUPPORTSWARM_RATE_LIMITS": "0", "SUPPORTSWARM_EMBED_THREADS": "1"}
    await asyncio.to_thread(_cli, env, "migrate")  # first, like compose: the others start once it is done
    a, b = spawn_serve("serve-a", env, workdir), spawn_serve("serve-b", env, workdir)
    worker_port = free_port()
    worker = spawn("worker", ["worker", "--metrics-port", str(worker_port)], env, workdir, worker_port)
    with running(a, b, worker):
        await asyncio.gather(
            *(asyncio.to_thread(_cli, env, "createuser", name, "--role", role, "--password", PASSWORD)
              for name, role in (("sam", "staff"), ("lena", "lead"))),
            wait_ready(a, "/readyz"), wait_ready(b, "/readyz"), wait_ready(worker, "/metrics"),
        )
        yield Topology(a, b, worker, db)


async def _token(http: httpx.AsyncClient, path: str, username: str) -> dict[str, str]:
    response = await http.post(path, json={"username": username, "password": PASSWORD})
    assert response.status_code in (200, 201), response.text
    http.cookies.clear()
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def _embedded(db: ConnectionParams, question_id: int) -> bool:
    conn = await asyncpg.connect(db.url())
    try:
        return bool(await conn.fetchval("SELECT embedding IS NOT NULL FROM questions WHERE id = $1", question_id))
    finally:
        await conn.close()


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == name}


CARD = ("My card payment was declined at the supermarket",
        "My debit card was declined twice at the supermarket today although my balance is fine.")


async def test_full_story_across_two_replicas_and_a_worker(topology: Topology) -> None:
    t = topology
    # Generous timeouts: the first ask on each replica loads the model (~5 s idle, much more on a busy machine).
    async with httpx.AsyncClient(base_url=t.a.http, timeout=150) as a, \
            httpx.AsyncClient(base_url=t.b.http, timeout=150) as b:
        asker1 = await _token(a, "/api/v1/auth/signup", "maria")
        asker2 = await _token(b, "/api/v1/auth/signup", "kenji")
        sam = await _token(b, "/api/v1/auth/login", "sam")
        lena = await _token(a, "/api/v1/auth/login", "lena")
        # Each replica embeds the text of an ask itself; load both models at once rather than one after the other.
        warm = await asyncio.gather(a.get("/api/v1/similar", params={"q": "warm up"}),
                                    b.get("/api/v1/similar", params={"q": "warm up"}))
        assert [r.status_code for r in warm] == [200, 200]

        # Ask on A: nothing related exists yet, so a swarm opens; the question's embedding is the worker's job.
        asked = await a.post("/api/v1/questions", json={"title": CARD[0], "body": CARD[1], "tags": ["cards"]},
                             headers=asker1)
        assert asked.status_code == 201, asked.text
        q1, route = asked.json()["question"]["id"], asked.json()["route"]
        assert route["type"] == "swarm"
        await wait_for(lambda: _embedded(t.db, q1), timeout_s=120, what="the worker embedding the question")

        # Swarm members on different replicas chat through Redis; the asker marks the solution.
        maria = await join(t.a, route["swarm_id"], asker1["Authorization"][7:])
        helper = await join(t.b, route["swarm_id"], sam["Authorization"][7:])
        solution = "Insert the card and pay once with chip and PIN: that resets the contactless counter."
        await helper.say(solution, "sam-1")
        said = [await m.next("message") for m in (maria, helper)]
        assert [(x["seq"], x["body"]) for x in said] == [(1, solution), (1, solution)]
        await maria.say("That worked, thank you!", "maria-1")
        assert (await helper.next("message"))["body"] == "That worked, thank you!"
        await maria.ws.send('{"type": "mark_solution", "seq": 1}')
        resolved = [await m.next("resolved") for m in (maria, helper)]
        answer_id = resolved[0]["answer_id"]
        assert resolved[1]["answer_id"] == answer_id
        detail = (await b.get(f"/api/v1/questions/{q1}", headers=asker2)).json()
        assert (detail["status"], detail["accepted_answer_id"]) == ("resolved", answer_id)

        # A similar ask on B: the swarm's solution is offered, and it solves it (a deflection).
        again = await b.post("/api/v1/questions", json={
            "title": "Card payment declined at the supermarket",
            "body": "My card got declined at the supermarket twice even though there is money on the account.",
            "tags": ["cards"]}, headers=asker2)
        assert again.status_code == 200, again.text
        offer = again.json()["route"]
        assert (offer["type"], offer["question_id"], offer["answer_id"]) == ("suggested_answer", q1, answer_id)
        accepted = await b.post(f"/api/v1/suggestions/{offer['suggestion_id']}/accept", headers=asker2)
        assert accepted.status_code == 200 and accepted.json()["outcome"] == "accepted"

        async def summary_shows_it() -> bool:
            s = (await a.get("/api/v1/metrics/summary", headers=lena)).json()
            return bool(s["resolved"] >= 1 and s["deflected"] >= 1 and s["swarms"]["resolved"] >= 1
                        and s["knowledge_reuse"] >= 1)

        await wait_for(summary_shows_it, timeout_s=30, what="the lead's summary counting the story")
        await _jobs_ran_in_the_worker_only(t, a, b)
        await _graceful_stop_sends_members_to_the_other_replica(t, maria, helper, asker1["Authorization"][7:])


async def _jobs_ran_in_the_worker_only(t: Topology, a: httpx.AsyncClient, b: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        worker = (await http.get(f"{t.worker.http}/metrics")).text
    replicas = [(await a.get("/metrics")).text, (await b.get("/metrics")).text]
    ran = _samples(worker, "supportswarm_jobs_total")
    assert ran[(("job", "embed_question"), ("outcome", "ok"))] >= 1
    assert _samples(worker, "supportswarm_embedding_seconds_count")[()] >= 1
    for text in replicas:  # with REDIS_URL, `serve` hands every job to the workers
        assert not any(value for labels, value in _samples(text, "supportswarm_jobs_total").items())
        assert _samples(text, "supportswarm_swarm_messages_total")[()] >= 1  # each replica stored a message
        assert _samples(text, "supportswarm_websockets_open")[()] == 1
    assert _samples(replicas[0], "supportswarm_jobs_enqueued_total")[(("job", "embed_question"),)] >= 1


async def _graceful_stop_sends_members_to_the_other_replica(t: Topology, maria: Member, helper: Member,
                                                           token: str) -> None:
    head = max(f["seq"] for f in maria.seen if f["type"] == "message")
    t.a.proc.terminate()  # SIGTERM, like `docker stop`
    frame = await maria.next("reconnect", timeout_s=15)
    await maria.ws.wait_closed()
    assert (frame["reason"], maria.ws.close_code) == ("shutdown", 4001)
    # uvicorn re-raises the SIGTERM it caught once its graceful shutdown is complete.
    assert await asyncio.to_thread(t.a.proc.wait, 30) == -signal.SIGTERM
    assert "Application shutdown complete" in t.a.output()
    resumed = await join(t.b, maria.welcome["swarm"]["id"], token, last_seq=head)
    assert resumed.welcome["backlog"] == [] and resumed.welcome["head"] == head  # nothing lost, nothing twice
    await resumed.ws.close()
    await helper.ws.close()
    t.worker.proc.terminate()
    assert await asyncio.to_thread(t.worker.proc.wait, 40) == 0
    output = t.a.output()
    assert "Traceback" not in output, output[-3000:]
