"""The vote's hubness correction: each question's density is stored when it is embedded, its neighbours'
are refreshed with it, the batched pass recomputes them all, and a hub no longer steals a match.
The real model: density is about where questions really sit."""

from __future__ import annotations

import asyncio

import asyncpg
import numpy as np
import pytest
from tortoise import connections

from embeddings import Embedder
from supportswarm.db import ConnectionParams
from supportswarm.matching import density, search, services
from supportswarm.matching.search import DEFAULT_FUSION, Fusion, Mode
from tests.matching.conftest import Forum

pytestmark = pytest.mark.model

HUB = ["I have a problem with my card", "Something is wrong with my card", "Question about my card"]
SPECIFIC = {
    "arrival": ["My new card has not arrived yet", "Still waiting for my card to be delivered",
                "When will my card arrive?"],
    "declined": ["My card payment was declined", "Why was my card declined at the shop?", "The shop refused my card"],
    "pin": ["I forgot my card PIN", "How do I reset my PIN?", "My PIN is blocked"],
}


@pytest.fixture
def embedder(real_embedder: Embedder) -> Embedder:
    return real_embedder


async def stored() -> dict[int, tuple[np.ndarray, float | None]]:
    rows = await connections.get("default").execute_query_dict(
        "SELECT id, embedding::real[] AS v, density FROM questions WHERE embedding IS NOT NULL")
    return {r["id"]: (np.array(r["v"], dtype=np.float32), r["density"]) for r in rows}


def expected_density(vectors: dict[int, np.ndarray], question_id: int) -> float:
    others = sorted((float(vectors[question_id] @ v) for i, v in vectors.items() if i != question_id), reverse=True)
    return float(np.mean(others[:density.NEIGHBOURS]))


async def card_forum(forum_content: Forum) -> dict[str, list[int]]:
    ids: dict[str, list[int]] = {"hub": []}
    for title in HUB:
        ids["hub"].append((await forum_content.answered(title, "Tell us more about your card problem.")).question_id)
    for topic, titles in SPECIFIC.items():
        ids[topic] = [(await forum_content.answered(t, f"The answer about {topic}.")).question_id for t in titles]
    await forum_content.settle()
    return ids


async def test_embedding_stores_the_density_and_refreshes_the_neighbours(forum_content: Forum) -> None:
    first = (await forum_content.answered("My card payment was declined", "Check the merchant.")).question_id
    await forum_content.settle()
    assert (await stored())[first][1] is None, "nothing else in the forum: no neighbours, no density yet"
    for title in ("Why was my card declined at the shop?", "How do I reset my PIN?"):
        await forum_content.answered(title, "An answer.")
    await forum_content.settle()
    rows = await stored()
    vectors = {i: v for i, (v, _) in rows.items()}
    for question_id, (_, value) in rows.items():
        assert value == pytest.approx(expected_density(vectors, question_id), abs=1e-4), \
            "the first question's density was refreshed when its neighbours arrived"


async def test_the_batched_pass_recomputes_every_density(forum_content: Forum, embedder: Embedder) -> None:
    ids = await card_forum(forum_content)
    await connections.get("default").execute_query("UPDATE questions SET density = NULL")
    seen: list[int] = []
    assert await density.refresh_density(model=embedder.name, batch_size=5, progress=seen.append) == 12
    assert seen == [5, 5, 2] and await density.count_embedded(embedder.name) == 12
    rows = await stored()
    vectors = {i: v for i, (v, _) in rows.items()}
    again = {i: d for i, (_, d) in rows.items()}
    assert again == pytest.approx({i: expected_density(vectors, i) for i in rows}, abs=1e-4)
    assert min(again[i] or 0.0 for i in ids["hub"]) > max(again[i] or 0.0 for i in ids["pin"][1:]), \
        "generic questions sit in a denser neighbourhood than specific ones"


async def test_a_question_locked_by_another_transaction_is_skipped_not_waited_for(
        forum_content: Forum, embedder: Embedder, pg_params: ConnectionParams) -> None:
    ids = await card_forum(forum_content)
    locked, free = ids["hub"][0], ids["pin"][0]
    await connections.get("default").execute_query("UPDATE questions SET density = NULL")
    other = await asyncpg.connect(pg_params.url())
    try:
        async with other.transaction():  # e.g. a moderator marking it a duplicate right now
            await other.execute("SELECT id FROM questions WHERE id = $1 FOR UPDATE", locked)
            async with asyncio.timeout(5):  # waiting would deadlock with concurrent embed jobs
                assert await density.update_density([locked, free], model=embedder.name) == 1
    finally:
        await other.close()
    rows = await stored()
    assert rows[locked][1] is None and rows[free][1] is not None


async def test_a_hub_question_no_longer_steals_the_match(forum_content: Forum, embedder: Embedder) -> None:
    ids = await card_forum(forum_content)
    query = "card doesn't work in shops"
    vector = embedder.encode([query])[0]
    hits = await search.candidates(vector, query, model=embedder.name)
    without = search.fuse(hits, Mode.HYBRID, Fusion(density_weight=0.0))
    assert without[0].id in ids["hub"], "without the correction the generic question wins"
    ranked = search.fuse(hits, Mode.HYBRID, DEFAULT_FUSION)
    assert ranked[0].id in ids["declined"]
    similar = await services.find_similar(query, embedder=embedder)
    assert similar.best is not None and similar.best.id in ids["declined"]
