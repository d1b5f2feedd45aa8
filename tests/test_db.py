"""The schema: migrations upgrade in place, models match tables, the embedded server persists."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from tortoise import Tortoise, connections

from embeddings import HashingEmbedder
from supportswarm.accounts import services as accounts
from supportswarm.accounts.models import User
from supportswarm.db import ConnectionParams, migrate, parse_database_url
from supportswarm.errors import ConfigurationError
from supportswarm.resources import open_resources
from supportswarm.settings import Settings
from tests.conftest import fresh_database


async def test_upgrade_in_place_keeps_existing_rows(pg_params: ConnectionParams) -> None:
    params = await fresh_database(pg_params, "supportswarm_upgrade")
    assert await migrate(params, until="0001_initial") == ["0001_initial"]
    conn = await asyncpg.connect(params.url())
    try:
        await conn.execute("INSERT INTO users (username, password_hash) VALUES ('old_timer', 'x')")
        await conn.execute("INSERT INTO questions (title, body) VALUES ('An old question title', 'body')")
        later = await migrate(params)
        assert "0001_initial" not in later
        assert await conn.fetchval("SELECT username FROM users") == "old_timer"
        assert await conn.fetchval("SELECT title FROM questions") == "An old question title"
        assert await migrate(params) == [], "a second run applies nothing"
    finally:
        await conn.close()


async def test_every_model_field_has_a_column(pg_params: ConnectionParams, app: object) -> None:
    conn = await asyncpg.connect(pg_params.url())
    try:
        rows = await conn.fetch("SELECT table_name, column_name FROM information_schema.columns "
                                "WHERE table_schema = 'public'")
    finally:
        await conn.close()
    columns = {(r["table_name"], r["column_name"]) for r in rows}
    missing = []
    for model in Tortoise.apps["models"].values():
        meta = model._meta
        for name in meta.db_fields:
            if (meta.db_table, name) not in columns:
                missing.append(f"{meta.db_table}.{name}")
    assert missing == []


async def test_server_without_pgvector_gets_a_clear_error() -> None:
    params = parse_database_url("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        conn = await asyncpg.connect(params.url(), timeout=2)
    except (OSError, asyncpg.PostgresError):
        pytest.skip("no plain PostgreSQL on 127.0.0.1:5432")
    try:
        has_vector = await conn.fetchval("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
    finally:
        await conn.close()
    if has_vector:
        pytest.skip("the local PostgreSQL has pgvector")
    with pytest.raises(ConfigurationError, match="pgvector"):
        await migrate(params)


async def test_embedded_database_persists_and_is_shared_with_cli_commands(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    async with open_resources(settings, embedder=HashingEmbedder()) as res:
        await accounts.register("first_user", "long-password")
        env = {**os.environ, "SUPPORTSWARM_DATA_DIR": str(tmp_path)}
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        beside = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "supportswarm.cli", "createuser", "cli_user", "--role", "staff",
             "--password", "long-password"],
            env=env, capture_output=True, text=True, timeout=60,
        )
        assert beside.returncode == 0, beside.stderr
        assert await User.filter(username="cli_user", role="staff").exists()
        assert res.db.host.startswith("/"), "the embedded server listens on a socket in the data folder"
    async with open_resources(settings, embedder=HashingEmbedder()):
        names = {u.username for u in await User.all()}
    assert names == {"first_user", "cli_user"}


async def test_pooled_connections_return_without_a_reset_round_trip_and_never_inside_a_transaction(app: object) -> None:
    client = connections.get("default")
    await client.execute_query("SELECT 0")  # the pool opens with the first query
    pool = client._pool
    statements: list[str] = []
    async with pool.acquire() as conn:
        conn.add_query_logger(lambda record: statements.append(record.query))
        await conn.execute("SELECT 1")
    assert statements == ["SELECT 1"], "no RESET ALL / UNLISTEN * round trip after each query"
    async with pool.acquire() as conn:
        conn.add_query_logger(lambda record: statements.append(record.query))
        tx = conn.transaction()
        await tx.start()
        await conn.execute("SELECT 2")
    async with pool.acquire() as conn:
        assert not conn.is_in_transaction()
    assert statements[-1] == "ROLLBACK", "a transaction left open ends before the connection is reused"
