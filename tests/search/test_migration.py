"""0008_search upgrades a database with rows in place: existing answers, comments and room messages
become searchable without being touched, and the new GIN indexes serve the search."""

from __future__ import annotations

from pathlib import Path

import asyncpg

import supportswarm
from supportswarm.db import ConnectionParams, ensure_database, migrate

MIGRATION = "0008_search"


def _before(name: str) -> str:
    folder = Path(supportswarm.__file__).parent / "migrations"
    names = sorted(p.name.removesuffix(".sql") for p in folder.glob("*.sql"))
    return names[names.index(name) - 1]


async def test_upgrade_in_place_indexes_existing_posts(pg_params: ConnectionParams) -> None:
    params = ConnectionParams(pg_params.host, pg_params.port, pg_params.user, pg_params.password, "search_upgrade")
    admin = await asyncpg.connect(pg_params.url("postgres"))
    try:
        await admin.execute('DROP DATABASE IF EXISTS "search_upgrade" WITH (FORCE)')
    finally:
        await admin.close()
    await ensure_database(params)
    await migrate(params, until=_before(MIGRATION))
    conn = await asyncpg.connect(params.url())
    try:
        await conn.execute("""
            INSERT INTO users (username, password_hash) VALUES ('old_timer', 'x');
            INSERT INTO questions (title, body) VALUES ('An old question title', 'body');
            INSERT INTO answers (question_id, body) VALUES (1, 'Reflash the ocelot firmware');
            INSERT INTO comments (question_id, body) VALUES (1, 'The ibex adapter too?');
            INSERT INTO swarms (question_id) VALUES (1);
            INSERT INTO swarm_messages (swarm_id, seq, body, client_msg_id)
                VALUES (1, 1, 'Tried the jerboa cable', 'm1');
        """)
        assert MIGRATION in await migrate(params)
        for table, word in [("answers", "ocelot"), ("comments", "ibex"), ("swarm_messages", "jerboa")]:
            found = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE search @@ to_tsquery('english', $1)", word)
            assert found == 1, table
            await conn.execute("SET enable_seqscan = off")  # with three rows the planner would rightly scan
            plan = "\n".join(r[0] for r in await conn.fetch(
                f"EXPLAIN SELECT id FROM {table} WHERE search @@ to_tsquery('english', 'x')"))
            assert f"{table}_search" in plan, plan
            await conn.execute("RESET enable_seqscan")
        assert await conn.fetchval("SELECT body FROM answers") == "Reflash the ocelot firmware"
    finally:
        await conn.close()
