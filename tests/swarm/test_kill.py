"""Issue 4's kill test: two app processes, 200 clients spread over both, a burst of thousands of messages,
and one process SIGKILLed mid-burst.

Every client must end with exactly the room's transcript (seq 1..head, no gap, no duplicate), the
clients of the killed process must be resynced on the survivor within 2 s, and every say sent (including
the ones in flight when the process died, which the clients retry with the same client_msg_id) must be
stored exactly once. The clients are bench/wsclient.py's RoomClient, the same code the benchmark uses.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.wsclient import RoomClient, clock, start_all, wait_until
from supportswarm.accounts import services as accounts
from supportswarm.db import ConnectionParams
from supportswarm.resources import Resources
from supportswarm.swarm import services
from supportswarm.swarm.models import Swarm, SwarmMessage
from tests.swarm.conftest import Server, running_servers
from tests.swarm.helpers import member, question

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

ROOMS = 20
USERS = 10  # the asker and 9 helpers, each in every room: 200 clients
SAYS_PER_SENDER = 60  # two senders per room: 2,400 messages, 24,000 deliveries
WINDOW = 4  # says a sender keeps unacknowledged
KILL_AT = 0.3  # share of the burst acknowledged when the process is killed
RESYNC_LIMIT_S = 2.0  # issue 4, on a machine with its cores free


def resync_limit_s() -> float:
    """The 2 s of issue 4, stretched only when other processes already queue for every core (a shared
    developer machine): the measured delay then is scheduling, not the protocol."""
    overload = os.getloadavg()[0] / (os.cpu_count() or 1)
    return RESYNC_LIMIT_S * max(1.0, overload)


@pytest.fixture
def replicas(pg_params: ConnectionParams, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Server]]:
    """Two fresh app processes (not the session's `servers`: one of these gets killed)."""
    monkeypatch.setenv("SUPPORTSWARM_RATE_LIMITS", "0")  # a burst from a few clients, not abuse
    with running_servers(pg_params, tmp_path, f"sskill-{uuid.uuid4().hex[:10]}:") as started:
        yield started


async def rooms(resources: Resources) -> tuple[list[int], list[str]]:
    """ROOMS open swarms asked by one customer, and a bearer token for each of the USERS members."""
    asker = await member("asker")
    users = [asker] + [await member(f"helper{i}", "staff" if i % 2 else "expert") for i in range(1, USERS)]
    swarm_ids = []
    for r in range(ROOMS):
        q = await question(asker, title=f"My card payment was declined at shop {r}")
        swarm = await services.open_swarm(q.id, opened_by=asker, reason="manual", broker=resources.broker,
                                          jobs=resources.jobs)
        swarm_ids.append(swarm.id)
    await resources.jobs.drain()  # the helper invitations: done before the burst, not during it
    return swarm_ids, [await accounts.create_token(u) for u in users]


async def burst(client: RoomClient, sent: list[str]) -> None:
    for i in range(SAYS_PER_SENDER):
        sent.append(await client.say(f"step {i}: try the card again in the app"))


async def stored_transcripts(swarm_ids: list[int]) -> dict[int, list[tuple[int, str]]]:
    rows = await SwarmMessage.filter(swarm_id__in=swarm_ids).order_by("seq").values_list(
        "swarm_id", "seq", "client_msg_id")
    transcripts: dict[int, list[tuple[int, str]]] = {s: [] for s in swarm_ids}
    for swarm_id, seq, cmid in rows:
        transcripts[swarm_id].append((seq, cmid))
    return transcripts


async def test_sigkill_mid_burst_loses_and_duplicates_nothing(resources: Resources, replicas: list[Server]) -> None:
    swarm_ids, tokens = await rooms(resources)
    urls = [s.http.replace("http://", "ws://") for s in replicas]
    # Member u of room r starts on process (u + r) % 2: every room has members (and a sender) on both.
    clients = {(u, r): RoomClient(urls, swarm_ids[r], tokens[u], home=(u + r) % 2, window=WINDOW)
               for u in range(USERS) for r in range(ROOMS)}
    await start_all(list(clients.values()), concurrency=20)
    senders = [clients[(r % USERS, r)] for r in range(ROOMS)] + [clients[((r + 1) % USERS, r)] for r in range(ROOMS)]
    sent: dict[RoomClient, list[str]] = {c: [] for c in senders}
    sending = asyncio.gather(*(burst(c, sent[c]) for c in senders))

    total = len(senders) * SAYS_PER_SENDER
    await wait_until(lambda: sum(c.n.acked for c in senders) >= total * KILL_AT, within=60, what="burst under way")
    victims = [c for c in clients.values() if c.at == 1]
    in_flight = sum(len(c.pending) for c in victims)
    killed_at = clock()
    replicas[1].proc.kill()
    await asyncio.wait_for(sending, 90)
    await wait_until(lambda: all(not c.pending for c in senders), within=20, what="every say acknowledged")

    heads = dict(await Swarm.filter(id__in=swarm_ids).values_list("id", "last_seq"))
    await wait_until(lambda: all(c.last_seq >= heads[c.swarm_id] for c in clients.values()), within=20,
                     what="every member caught up")
    stored = await stored_transcripts(swarm_ids)
    for c in clients.values():
        await c.stop()

    assert len(victims) == len(clients) // 2 and in_flight > 0, "the kill hit half the clients, mid-burst"
    # PostgreSQL: each room's seqs are 1..head, and every say ever sent is stored exactly once.
    for swarm_id in swarm_ids:
        assert [seq for seq, _ in stored[swarm_id]] == list(range(1, heads[swarm_id] + 1))
        mine = Counter(cmid for c in senders if c.swarm_id == swarm_id for cmid in sent[c])
        assert Counter(cmid for _, cmid in stored[swarm_id]) == mine, "each client_msg_id once, none lost"
    assert sum(heads.values()) == total
    # Every member saw exactly that transcript, in order, once.
    for c in clients.values():
        assert c.fatal is None and c.n.gaps == [] and c.n.duplicates == [], (c.swarm_id, c.n)
        assert c.transcript == stored[c.swarm_id]
    # The killed process's clients resumed on the survivor, each within the limit of losing its socket.
    resync = sorted(r.synced_at - killed_at for c in victims for r in c.resyncs[1:2] if r.synced_at is not None)
    assert len(resync) == len(victims) and all(c.at == 0 for c in victims)
    limit = resync_limit_s()
    assert resync[-1] <= limit, f"resync after the kill: median {resync[len(resync) // 2]:.3f}s, " \
                                f"max {resync[-1]:.3f}s, limit {limit:.2f}s"
    assert all(c.n.connects == 1 for c in clients.values() if c not in victims), "the survivor's clients stayed"
