"""The semantic side of search, with the real model: a question found by meaning when no word of the
query is in its thread, but never for exact-text queries (phrases, exclusions) or off-topic ones."""

from __future__ import annotations

import pytest

from embeddings import Embedder
from tests.search.conftest import Threads


@pytest.fixture
def embedder(real_embedder: Embedder) -> Embedder:
    return real_embedder


async def test_meaning_finds_what_words_do_not(threads: Threads) -> None:
    atm = await threads.question("The ATM swallowed my card", "It did not give it back after I took the money.")
    await threads.question("How do I change my address", "I moved house last month.")
    body = (await threads.search("cash machine kept my card")).json()
    assert [i["id"] for i in body["items"]] == [atm] and body["total"] == 1
    assert body["items"][0]["matched_in"] == ["similar"]
    assert await threads.found('"cash machine" kept my card') == [], "a phrase asks for exact text"
    assert await threads.found("cash machine kept my card -address") == [], "so does an exclusion"
    assert await threads.found("how do I bake sourdough bread") == [], "nothing near: nothing found"
    assert await threads.found("cash machine kept my card is:resolved") == [], "filters apply to meaning too"

