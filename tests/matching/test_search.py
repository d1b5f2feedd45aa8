"""The pure part of hybrid search: fusing the two candidate lists into one ranking."""

from __future__ import annotations

from dataclasses import replace

import pytest

from supportswarm.matching.search import Fusion, Hit, Mode, fuse, question_text


def hit(id: int, *, cosine: float | None = None, vector_rank: int | None = None, text_rank: int | None = None,
        text_score: float = 0.0, solution: str | None = None) -> Hit:
    return Hit(id=id, external_id=None, title=f"q{id}", accepted_answer_id=id * 10 if solution else None,
               solution=solution, cosine=cosine, vector_rank=vector_rank, text_rank=text_rank, text_score=text_score)


def test_question_text_is_title_then_body() -> None:
    assert question_text("Card declined", "  at the shop ") == "Card declined\n  at the shop"
    assert question_text("Card declined", "") == "Card declined"


class TestFuse:
    def test_vector_mode_orders_by_cosine_and_drops_text_only_hits(self) -> None:
        hits = [hit(1, cosine=0.5, vector_rank=2), hit(2, cosine=0.9, vector_rank=1), hit(3, text_rank=1)]
        assert [h.id for h in fuse(hits, Mode.VECTOR)] == [2, 1]

    def test_text_mode_orders_by_text_score(self) -> None:
        hits = [hit(1, text_rank=2, text_score=0.2), hit(2, text_rank=1, text_score=0.6), hit(3, cosine=0.9,
                                                                                                vector_rank=1)]
        assert [(h.id, h.score) for h in fuse(hits, Mode.TEXT)] == [(2, 0.6), (1, 0.2)]

    def test_rrf_rewards_agreement_of_both_lists(self) -> None:
        hits = [hit(1, cosine=0.9, vector_rank=1), hit(2, cosine=0.8, vector_rank=2, text_rank=1),
                hit(3, text_rank=2)]
        assert [h.id for h in fuse(hits, Mode.RRF)] == [2, 1, 3]

    def test_questions_sharing_a_solution_pool_their_votes(self) -> None:
        # The single nearest question loses to three slightly farther ones that share one answer.
        hits = [hit(1, cosine=0.80, vector_rank=1, solution="a"),
                *[hit(i, cosine=0.78, vector_rank=i, solution="b") for i in (2, 3, 4)]]
        ranked = fuse(hits, Mode.HYBRID, Fusion(text_weight=0.0))
        assert [h.id for h in ranked] == [2, 1], "one question per solution, the closest represents it"
        assert ranked[0].score > 0.5 > ranked[1].score
        assert sum(h.score for h in ranked) == pytest.approx(1.0)

    def test_closeness_dominates_the_vote(self) -> None:
        hits = [hit(1, cosine=0.95, vector_rank=1, solution="a"),
                *[hit(i, cosine=0.70, vector_rank=i, solution="b") for i in (2, 3, 4, 5, 6)]]
        ranked = fuse(hits, Mode.HYBRID, Fusion(text_weight=0.0))
        assert ranked[0].id == 1 and ranked[0].score > 0.8

    def test_text_leg_adds_evidence_and_can_surface_unembedded_questions(self) -> None:
        hits = [hit(1, cosine=0.80, vector_rank=1, solution="a"), hit(2, cosine=0.80, vector_rank=2, solution="b",
                                                                      text_rank=1), hit(3, text_rank=2)]
        ranked = fuse(hits, Mode.HYBRID, Fusion(text_weight=0.3))
        assert [h.id for h in ranked] == [2, 1, 3]
        assert ranked[2].cosine is None and ranked[2].score > 0

    def test_nothing_found_is_an_empty_ranking(self) -> None:
        assert fuse([], Mode.HYBRID) == []


class TestDensity:
    def test_a_dense_question_loses_its_pull(self) -> None:
        # The hub is a little closer, but it is close to everything: the specific question wins.
        hub = replace(hit(1, cosine=0.80, vector_rank=1, solution="hub"), density=0.75)
        specific = replace(hit(2, cosine=0.78, vector_rank=2, solution="s"), density=0.45)
        assert fuse([hub, specific], Mode.HYBRID, Fusion(text_weight=0.0, density_weight=0.0))[0].id == 1
        assert fuse([hub, specific], Mode.HYBRID, Fusion(text_weight=0.0, density_weight=0.5))[0].id == 2

    def test_a_question_without_density_yet_counts_as_average(self) -> None:
        known = [replace(hit(i, cosine=0.8, vector_rank=i, solution=f"s{i}"), density=d)
                 for i, d in ((1, 0.4), (2, 0.6))]
        new = hit(3, cosine=0.8, vector_rank=3, solution="s3")
        ranked = fuse([*known, new], Mode.HYBRID, Fusion(text_weight=0.0, density_weight=0.5))
        assert [h.id for h in ranked] == [1, 3, 2], "the mean density: between the two known ones"
