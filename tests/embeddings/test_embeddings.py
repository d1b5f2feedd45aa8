from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from embeddings import (
    DEFAULT_NAME,
    Embedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    default_model_path,
    default_threads,
    load_embedder,
)


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    return load_embedder()


def _assert_unit_rows(vectors: np.ndarray, n: int, dim: int) -> None:
    assert vectors.shape == (n, dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.model
class TestSentenceTransformerEmbedder:
    def test_loads_offline_and_gives_unit_384_vectors(self, minilm: Embedder) -> None:
        vectors = minilm.encode(["My card has not arrived", "How do I top up?", "Exchange rate for euros"])
        _assert_unit_rows(vectors, 3, 384)
        assert minilm.dim == 384
        assert minilm.name == DEFAULT_NAME == "all-MiniLM-L6-v2@gt-0.1.0"
        assert os.environ["HF_HUB_OFFLINE"] == "1"

    def test_paraphrase_is_closer_than_unrelated_question(self, minilm: Embedder) -> None:
        question, paraphrase, unrelated = minilm.encode(
            [
                "I forgot my password, how can I reset it?",
                "How do I change my password if I can't remember it?",
                "Which currencies can I hold in my account?",
            ]
        )
        assert float(question @ paraphrase) > float(question @ unrelated) + 0.3

    def test_single_query_matches_batch_encoding(self, minilm: Embedder) -> None:
        texts = ["short", "a somewhat longer question about a declined card payment abroad"]
        batch = minilm.encode(texts, batch_size=2)
        one_by_one = np.vstack([minilm.encode([text]) for text in texts])
        np.testing.assert_allclose(batch, one_by_one, atol=1e-5)

    def test_empty_input_gives_empty_matrix(self, minilm: Embedder) -> None:
        assert minilm.encode([]).shape == (0, 384)

    def test_very_long_input_is_truncated_not_rejected(self, minilm: Embedder) -> None:
        _assert_unit_rows(minilm.encode(["refund " * 20_000, ""]), 2, 384)

    def test_load_embedder_returns_one_instance_per_model(self, minilm: Embedder) -> None:
        assert load_embedder() is minilm
        assert load_embedder(str(default_model_path())) is minilm

    def test_missing_model_folder_fails_without_reaching_a_hub(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError):
            SentenceTransformerEmbedder(str(tmp_path / "no-such-model"))


def test_default_threads_is_between_one_and_four() -> None:
    assert 1 <= default_threads() <= 4


class TestHashingEmbedder:
    def test_is_an_embedder(self) -> None:
        assert isinstance(HashingEmbedder(), Embedder)
        assert HashingEmbedder().name == "hashing-v1"

    def test_is_deterministic_across_instances(self) -> None:
        texts = ["Card not arrived yet", "top up failed"]
        np.testing.assert_array_equal(HashingEmbedder().encode(texts), HashingEmbedder().encode(texts))

    def test_rows_are_unit_length_including_empty_text(self) -> None:
        _assert_unit_rows(HashingEmbedder(dim=64).encode(["a b c", "", "!!!", "x " * 1000]), 4, 64)

    def test_shared_words_score_higher_than_disjoint_words(self) -> None:
        card, card_again, other = HashingEmbedder().encode(
            ["my card has not arrived", "has my card arrived", "exchange rate euros"]
        )
        assert float(card @ card_again) > float(card @ other)

    def test_empty_input_gives_empty_matrix(self) -> None:
        assert HashingEmbedder(dim=8).encode([]).shape == (0, 8)

    def test_rejects_non_positive_dim(self) -> None:
        with pytest.raises(ValueError):
            HashingEmbedder(dim=0)
