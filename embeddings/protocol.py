"""The embedder interface the rest of SupportSwarm depends on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors.

    ``encode`` is synchronous and CPU-bound: async callers run it with
    ``asyncio.to_thread``. Vectors from different ``name`` values are not comparable,
    so ``name`` is stored next to every vector and a change of model means a reindex.
    """

    @property
    def name(self) -> str:
        """Model id and version, e.g. ``"all-MiniLM-L6-v2@gt-0.1.0"``."""
        ...

    @property
    def dim(self) -> int:
        """Length of every vector (384 for all-MiniLM-L6-v2)."""
        ...

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> Vectors:
        """Return an array of shape ``(len(texts), dim)``, dtype float32, rows of unit length."""
        ...
