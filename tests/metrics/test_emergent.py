"""Emergent problems with the real model: a burst of paraphrases among unrelated questions, and incidents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from tortoise import connections

from embeddings import Embedder
from supportswarm.accounts.models import User
from supportswarm.errors import Conflict, Forbidden
from supportswarm.forum import services as forum
from supportswarm.forum.models import Question, QuestionStatus
from supportswarm.metrics import emergent
from supportswarm.metrics.clustering import leader_clusters
from supportswarm.metrics.emergent import EmergentConfig
from supportswarm.metrics.rollup import fetch
from supportswarm.resources import Resources
from supportswarm.swarm.models import Swarm
from tests.metrics.helpers import person

pytestmark = pytest.mark.model

NOW = datetime.now(UTC).replace(microsecond=0)
BURST = [
    "Payment page spins forever when I try to pay",
    "The checkout payment screen keeps loading and never finishes",
    "Stuck on the payment page, the spinner never stops",
    "Paying by card: the page just keeps spinning",
    "Payment won't go through, the loading wheel spins endlessly",
    "I can't complete my payment, the page hangs on loading",
    "Payment screen frozen with a spinning circle",
    "The pay button does nothing, page loads forever",
]
LATER = ["Checkout stuck loading when paying for my order", "Trying to pay and the payment page never loads"]
UNRELATED = [
    "How do I reset my password for the app?",
    "My new card has not arrived after two weeks",
    "What is the exchange rate for euros to dollars?",
    "Can I change the PIN of my debit card?",
    "How do I close my account for good?",
    "Why was I charged a fee for a transfer abroad?",
    "How long does a bank transfer take to arrive?",
    "I want to update my home address",
    "Is there an age limit to open an account?",
    "My card was declined at the supermarket",
    "How do I verify my identity with a passport?",
    "The app crashes when I open it on my phone",
]
BODY = "It happened today; please help."


@pytest.fixture
def embedder(real_embedder: Embedder) -> Embedder:
    return real_embedder


async def post(embedder: Embedder, author: User, title: str, minutes_ago: float) -> Question:
    """A question as the ask flow makes it, with its embedding written as the embed job would."""
    q = await forum.create_question(author, title, BODY, ["payments"], jobs=None,
                                    created_at=NOW - timedelta(minutes=minutes_ago))
    vector = embedder.encode([f"{title}\n\n{BODY}"])[0]
    await connections.get("default").execute_query(
        "UPDATE questions SET embedding = $1::vector WHERE id = $2", ["[" + ",".join(map(str, vector)) + "]", q.id])
    return q


async def burst_and_noise(embedder: Embedder) -> tuple[list[Question], list[Question]]:
    """Eight customers with one problem over 35 minutes, twelve others with their own, plus decoys."""
    burst = [await post(embedder, await person(f"cust{i}"), t, 40 - 5 * i) for i, t in enumerate(BURST)]
    others = [await post(embedder, await person(f"other{i}"), t, 50 - 4 * i) for i, t in enumerate(UNRELATED)]
    old = await post(embedder, await person("old"), "Payment page keeps spinning, cannot pay", 180)
    done = await post(embedder, await person("done"), "Payment page spinning forever, no way to pay", 20)
    await Question.filter(id=done.id).update(status=QuestionStatus.RESOLVED)
    assert old.id and done.id
    return burst, others


async def members(cluster_id: int) -> set[int]:
    rows = await fetch("SELECT question_id FROM emergent_cluster_questions WHERE cluster_id = $1", [cluster_id])
    return {r["question_id"] for r in rows}


class TestDetection:
    async def test_finds_the_burst_and_leaves_unrelated_ones_out(self, resources: Resources,
                                                                 embedder: Embedder) -> None:
        burst, _others = await burst_and_noise(embedder)
        found = await emergent.detect(now=NOW)
        assert len(found) == 1
        assert await members(found[0]) == {q.id for q in burst}  # no unrelated, old or resolved question
        [shown] = await emergent.list_clusters(now=NOW)
        assert shown["size"] == 8 and shown["askers"] == 8 and shown["status"] == "open"
        assert shown["headline"].startswith("8 customers in 35 minutes: ")
        assert shown["headline"].split(": ", 1)[1] in BURST

    async def test_a_second_run_grows_the_same_cluster(self, resources: Resources, embedder: Embedder) -> None:
        burst, _ = await burst_and_noise(embedder)
        [first] = await emergent.detect(now=NOW)
        assert await emergent.detect(now=NOW) == [first]
        later = [await post(embedder, await person(f"late{i}"), t, 1) for i, t in enumerate(LATER)]
        assert await emergent.detect(now=NOW) == [first]
        assert await members(first) == {q.id for q in burst + later}
        assert len(await emergent.list_clusters(now=NOW)) == 1

    async def test_quiet_window_finds_nothing(self, resources: Resources, embedder: Embedder) -> None:
        for i, t in enumerate(UNRELATED):
            await post(embedder, await person(f"other{i}"), t, 30)
        assert await emergent.detect(now=NOW) == []
        assert await emergent.list_clusters(now=NOW) == []

    def test_star_clusters_do_not_chain(self) -> None:
        """Five points 40 degrees apart: each is similar only to its neighbours (cos 40 = 0.77 >= 0.7 > cos 80).
        Connected components would make one cluster of the whole chain; stars keep every member near its leader."""
        angles = np.radians([0, 40, 80, 120, 160])
        vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
        clusters = leader_clusters(vectors, threshold=0.7, min_size=2)
        assert [sorted(cl.members) for cl in clusters] == [[0, 1, 2], [3, 4]]


class TestIncident:
    async def test_one_click_opens_one_swarm_linking_every_question(self, resources: Resources,
                                                                    embedder: Embedder) -> None:
        burst, _ = await burst_and_noise(embedder)
        [cluster_id] = await emergent.detect(now=NOW)
        lead = await person("lena", "lead")
        incident = await emergent.open_incident(cluster_id, user=lead, broker=resources.broker, jobs=resources.jobs)
        swarm = await Swarm.get(id=incident["swarm_id"])
        assert swarm.reason == "incident" and swarm.question_id in {q.id for q in burst}  # type: ignore[attr-defined]
        assert set(incident["question_ids"]) == {q.id for q in burst}
        linked = await fetch("SELECT question_id FROM swarm_links WHERE swarm_id = $1", [swarm.id])
        assert {r["question_id"] for r in linked} == {q.id for q in burst} - {swarm.question_id}  # type: ignore[attr-defined]
        again = await emergent.open_incident(cluster_id, user=lead, broker=resources.broker, jobs=resources.jobs)
        assert again["swarm_id"] == swarm.id and await Swarm.all().count() == 1
        assert await emergent.detect(now=NOW) == []  # its questions are handled: no second cluster
        [shown] = await emergent.list_clusters(now=NOW)
        assert (shown["status"], shown["swarm_id"]) == ("incident", swarm.id)

    async def test_automatic_mode_opens_it_without_a_click(self, resources: Resources, embedder: Embedder) -> None:
        await burst_and_noise(embedder)
        [cluster_id] = await emergent.detect(now=NOW, config=EmergentConfig(auto_open=True),
                                             broker=resources.broker, jobs=resources.jobs)
        rows = await fetch("SELECT status, swarm_id FROM emergent_clusters WHERE id = $1", [cluster_id])
        assert rows[0]["status"] == "incident" and rows[0]["swarm_id"] is not None

    async def test_customers_cannot_open_or_dismiss(self, resources: Resources, embedder: Embedder) -> None:
        await burst_and_noise(embedder)
        [cluster_id] = await emergent.detect(now=NOW)
        customer = await person("curious")
        with pytest.raises(Forbidden):
            await emergent.open_incident(cluster_id, user=customer, broker=resources.broker, jobs=resources.jobs)
        with pytest.raises(Forbidden):
            await emergent.dismiss(cluster_id, user=customer)

    async def test_dismissed_clusters_stay_dismissed(self, resources: Resources, embedder: Embedder) -> None:
        await burst_and_noise(embedder)
        [cluster_id] = await emergent.detect(now=NOW)
        staff = await person("sam", "staff")
        await emergent.dismiss(cluster_id, user=staff)
        assert await emergent.detect(now=NOW) == []
        assert await emergent.list_clusters(now=NOW) == []
        with pytest.raises(Conflict):
            await emergent.dismiss(cluster_id, user=staff)


class TestRoutes:
    async def test_lead_opens_the_incident_over_the_api(self, resources: Resources, embedder: Embedder,
                                                        make_user: Any) -> None:
        burst, _ = await burst_and_noise(embedder)
        [cluster_id] = await emergent.detect(now=NOW)
        customer, lead = await make_user("cora"), await make_user("lena", "lead")
        assert (await customer.post(f"/api/v1/metrics/emergent/{cluster_id}/incident")).status_code == 403
        listed = (await lead.get("/api/v1/metrics/emergent")).json()["clusters"]
        assert [c["id"] for c in listed] == [cluster_id]
        page = (await lead.get("/dashboard")).text
        assert "8 customers in 35 minutes" in page and f"/dashboard/emergent/{cluster_id}/incident" in page
        response = await lead.post(f"/api/v1/metrics/emergent/{cluster_id}/incident")
        assert response.status_code == 201
        assert sorted(response.json()["question_ids"]) == sorted(q.id for q in burst)
        summary = (await lead.get("/api/v1/metrics/summary")).json()
        assert summary["swarms"]["incidents"] == 1
        assert summary["swarm_rate"] == round(8 / (8 + 12 + 2), 4)  # linked questions needed the swarm too
        assert (await lead.post("/api/v1/metrics/emergent/999999/incident")).status_code == 404
