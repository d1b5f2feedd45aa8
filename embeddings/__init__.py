"""Text embeddings for matching: the Embedder protocol, the real model and a test double."""

from __future__ import annotations

from embeddings.hashing import HashingEmbedder
from embeddings.model import (
    DEFAULT_NAME,
    SentenceTransformerEmbedder,
    available_cpus,
    default_model_path,
    default_threads,
    load_embedder,
)
from embeddings.protocol import Embedder, Vectors

__all__ = [
    "DEFAULT_NAME",
    "Embedder",
    "HashingEmbedder",
    "SentenceTransformerEmbedder",
    "Vectors",
    "available_cpus",
    "default_model_path",
    "default_threads",
    "load_embedder",
]
