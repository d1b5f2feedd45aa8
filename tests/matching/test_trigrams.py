"""The character-trigram leg: pg_trgm's similarity, and the vote it tips towards the closer wording."""

from __future__ import annotations

import pytest

from embeddings import Embedder
from supportswarm.matching import search, services
from supportswarm.matching.search import DEFAULT_FUSION, Fusion, Hit, Mode, fuse
from supportswarm.matching.trigrams import similarity, trigrams
from tests.matching.conftest import Forum


def test_trigrams_are_pg_trgms() -> None:
    # pg_trgm's documented examples: show_trgm('cat') and similarity('word', 'two words') = 0.363636.
    assert trigrams("Cat") == {"  c", " ca", "cat", "at "}
    assert similarity("word", "two words") == pytest.approx(4 / 11)
    assert trigrams("it's £10!") == trigrams("IT S 10"), "words are runs of letters and digits, lower-cased"


def test_a_misspelling_keeps_most_of_its_trigrams() -> None:
    assert similarity("card anywere", "card anywhere") > 0.5 > similarity("card anywere", "card activation")
    assert similarity("", "anything") == 0.0 and similarity("", "") == 0.0


def hit(id: int, title: str, solution: str, cosine: float = 0.8) -> Hit:
    return Hit(id=id, external_id=None, title=title, accepted_answer_id=id, solution=solution, cosine=cosine,
               vector_rank=id, text_rank=None, text_score=0.0)


class TestTrigramLeg:
    # Two solutions with exactly the same vector evidence: only the wording can tell them apart.
    HITS = [hit(1, "How do I activate my card?", "activate"), hit(2, "Can I use my card anywhere?", "accept")]

    def test_the_closer_wording_wins_a_tie_of_meaning(self) -> None:
        ranked = fuse(self.HITS, Mode.HYBRID, DEFAULT_FUSION, query="can i use my card anywere")
        assert [h.id for h in ranked] == [2, 1]
        assert ranked[0].score > 0.5 and sum(h.score for h in ranked) == pytest.approx(1.0)

    def test_without_a_query_or_a_weight_the_leg_is_silent(self) -> None:
        for ranked in (fuse(self.HITS, Mode.HYBRID, DEFAULT_FUSION),
                       fuse(self.HITS, Mode.HYBRID, Fusion(trigram_weight=0.0), query="can i use my card anywere"),
                       fuse(self.HITS, Mode.HYBRID, DEFAULT_FUSION, query="!?")):
            assert [h.score for h in ranked] == pytest.approx([0.5, 0.5])

    def test_meaning_still_outweighs_wording(self) -> None:
        # A clearly closer question by meaning keeps first place against a title that merely shares words.
        hits = [hit(1, "How do I activate my card?", "activate", cosine=0.92),
                hit(2, "Can I use my card anywhere?", "accept", cosine=0.70)]
        assert fuse(hits, Mode.HYBRID, DEFAULT_FUSION, query="can i use my card anywere")[0].id == 1


@pytest.fixture
def embedder(real_embedder: Embedder) -> Embedder:
    """The forum is embedded by the real model too (the app's default is a deterministic stand-in)."""
    return real_embedder


@pytest.mark.model
async def test_find_similar_scores_with_the_query_wording(forum_content: Forum, embedder: Embedder) -> None:
    """Through the real SQL and model: the served ranking is the vote with the trigram leg of the asked text."""
    for title, answer in (("Where can I use my card?", "In every shop that takes the card network."),
                          ("How do I activate my card?", "Cards > Activate, then enter the code on the letter."),
                          ("My balance did not update after a cash deposit", "Deposits show within two hours.")):
        await forum_content.answered(title, answer)
    await forum_content.settle()
    query = "can i use my crad evrywhere"
    vector = embedder.encode([query])[0]
    hits = await search.candidates(vector, query, model=embedder.name)
    expected = fuse(hits, Mode.HYBRID, DEFAULT_FUSION, query=query)[:services.DEFAULT_LIMIT]
    silent = fuse(hits, Mode.HYBRID, DEFAULT_FUSION)
    similar = await services.find_similar(query, embedder=embedder)
    assert [h.id for h in similar.hits] == [h.id for h in expected]
    assert [h.score for h in similar.hits] == pytest.approx([h.score for h in expected])
    assert similar.hits[0].title == "Where can I use my card?"
    assert similar.hits[0].score != pytest.approx(silent[0].score), "the trigram leg took part"
