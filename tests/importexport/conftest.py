"""Import/export fixtures: a second, freshly migrated database on the same server."""

from __future__ import annotations

import asyncpg
import pytest

from supportswarm.db import ConnectionParams, migrate

ROUNDTRIP_DATABASE = "supportswarm_roundtrip"


@pytest.fixture
async def empty_db(pg_params: ConnectionParams) -> ConnectionParams:
    """An empty SupportSwarm database beside the test one, recreated for each test."""
    params = ConnectionParams(pg_params.host, pg_params.port, pg_params.user, pg_params.password, ROUNDTRIP_DATABASE)
    conn = await asyncpg.connect(pg_params.url("postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{ROUNDTRIP_DATABASE}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{ROUNDTRIP_DATABASE}"')
    finally:
        await conn.close()
    await migrate(params)
    return params
