"""The web process tunes the cycle collector (resources.tune_gc) so that full collections neither come often nor
traverse the start-up heap, which stalled the rooms' event loop (bench/README.md, "Swarm rooms")."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from asgi_lifespan import LifespanManager

from embeddings import HashingEmbedder
from supportswarm import resources
from supportswarm.app import create_app
from supportswarm.settings import Settings


class Cycle:
    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def unfrozen() -> Iterator[None]:
    thresholds = gc.get_threshold()
    gc.unfreeze()  # whatever an earlier test's app froze goes back to the collector
    gc.set_threshold(700, 10, 10)  # CPython's defaults
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("unfrozen")
async def test_start_up_freezes_what_is_alive_and_collects_garbage_first(settings: Settings) -> None:
    garbage = weakref.ref(Cycle())  # unreachable, but only the cycle collector can free it
    assert garbage() is not None and gc.get_freeze_count() == 0
    async with LifespanManager(create_app(settings, embedder=HashingEmbedder())):
        assert gc.get_threshold() == resources.GC_THRESHOLDS
        assert gc.get_freeze_count() > 10_000, "modules, classes and the ORM's metadata are frozen"
        assert garbage() is None, "garbage is collected, never frozen (it would never be freed)"


@pytest.mark.usefixtures("unfrozen")
def test_loading_the_model_freezes_it(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resources, "load_embedder", lambda *args, **kwargs: HashingEmbedder())
    lazy = resources.LazyEmbedder(settings)
    assert gc.get_freeze_count() == 0, "nothing is loaded before the first use"
    assert lazy.dim == HashingEmbedder().dim
    assert gc.get_freeze_count() > 0
