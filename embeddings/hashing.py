"""A deterministic, model-free embedder for plumbing tests (never for matching quality)."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence

import numpy as np

from embeddings.protocol import Vectors

_TOKEN = re.compile(r"[a-z0-9]+")
_EMPTY = "\x00empty"  # the one feature of a text without word tokens


class HashingEmbedder:
    """Feature hashing of lowercase word tokens and bigrams, signed, then L2-normalised.

    Stable across processes and machines (blake2b, not Python's salted ``hash``).
    Texts sharing words get a positive cosine, which is all plumbing tests need.
    """

    name = "hashing-v1"

    def __init__(self, dim: int = 384) -> None:
        if dim < 1:
            raise ValueError("dim must be positive")
        self.dim = dim

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> Vectors:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in _features(text):
                digest = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
                out[row, (digest >> 1) % self.dim] += 1.0 if digest & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        # Signed features can cancel out exactly (rare): give such rows a fixed unit vector.
        cancelled = norms[:, 0] == 0.0
        out[cancelled, 0] = 1.0
        norms[cancelled] = 1.0
        normalised: Vectors = out / norms
        return normalised


def _features(text: str) -> list[str]:
    tokens = _TOKEN.findall(text.lower())
    if not tokens:
        return [_EMPTY]
    return tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]
