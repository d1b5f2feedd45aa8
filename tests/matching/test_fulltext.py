"""The full-text side of search, in PostgreSQL: IDF-weighted (rare words count), safe with any input,
and only over visible questions. The deterministic embedder: nothing here depends on the model."""

from __future__ import annotations

import pytest

from supportswarm.accounts.models import User
from supportswarm.forum import services as forum
from supportswarm.matching import search
from supportswarm.matching.search import Mode
from tests.matching.conftest import Forum


async def text_ranking(text: str, **kw: int) -> list[int]:
    hits = await search.candidates(None, text, model="unused", **kw)
    return [h.id for h in search.fuse(hits, Mode.TEXT)]


@pytest.fixture
async def cards(forum_content: Forum) -> dict[str, int]:
    ids = {
        "chargeback": await forum_content.question("How do I file a chargeback for my card?"),
        "lost": await forum_content.question("My card was lost, what do I do with the card?"),
        "limit": await forum_content.question("What is the card limit for a new card?"),
        "pin": await forum_content.question("Card PIN blocked after three tries"),
    }
    for i in range(6):
        await forum_content.question(f"Another card question number {i}")
    await search.refresh_search_terms()
    return ids


async def test_a_rare_word_outweighs_a_common_one(cards: dict[str, int]) -> None:
    # "card" is in every question; "chargeback" in one: BM25 puts that one first, ts_rank would not.
    assert (await text_ranking("card card chargeback"))[0] == cards["chargeback"]
    assert (await text_ranking("blocked pin"))[0] == cards["pin"]


async def test_every_word_is_optional(cards: dict[str, int]) -> None:
    ranking = await text_ranking("lost passport and card")
    assert ranking[0] == cards["lost"], "no question has 'passport': an AND query would find nothing"


async def test_frequencies_come_from_the_last_recount(forum_content: Forum, cards: dict[str, int]) -> None:
    from tortoise import connections

    rows = await connections.get("default").execute_query_dict(
        "SELECT lexeme, ndoc FROM search_terms WHERE lexeme IN ('', 'card', 'chargeback') ORDER BY lexeme")
    assert [(r["lexeme"], r["ndoc"]) for r in rows] == [("", 10), ("card", 10), ("chargeback", 1)]


@pytest.mark.parametrize("text", ["", "the and of", "a & b | !c <-> (d) 'e' f:* \\ ;--", "ü ß カード 💳"])
async def test_any_text_is_safe(cards: dict[str, int], text: str) -> None:
    assert isinstance(await text_ranking(text), list)


async def test_duplicates_and_the_excluded_question_are_left_out(forum_content: Forum, cards: dict[str, int]) -> None:
    staff: User = await forum_content.user("mod", "staff")
    await forum.mark_duplicate(staff, cards["pin"], cards["lost"])
    await search.refresh_search_terms()
    assert cards["pin"] not in await text_ranking("blocked pin")
    assert cards["chargeback"] not in await text_ranking("chargeback", exclude_id=cards["chargeback"])


async def test_candidates_per_side_are_capped(cards: dict[str, int]) -> None:
    assert len(await text_ranking("another card question", per_side=3)) == 3


async def test_without_a_recount_every_word_weighs_the_same(forum_content: Forum) -> None:
    first = await forum_content.question("Chargeback for a card payment")
    ranking = await text_ranking("chargeback")
    assert ranking == [first], "search_terms is empty: the new word still retrieves"
