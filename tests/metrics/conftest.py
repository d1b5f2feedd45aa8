"""Metrics fixtures."""

from __future__ import annotations

import pytest
from asgi_lifespan import LifespanManager

from supportswarm.resources import Resources


@pytest.fixture
def resources(app: LifespanManager) -> Resources:
    # asgi-lifespan 2.x keeps the lifespan state in `_state` (tests/conftest.py's fixture reads `.state`).
    res: Resources = app._state["resources"]
    return res
