"""Storing room messages: one statement for any number of says, and group commit of concurrent ones.

Benchmarked in bench/swarm_ws.py (phase t, 100 busy rooms): a statement and a commit per say made
PostgreSQL and the pool round trips most of a message's cost (717 messages/s; 2,500-2,900 with this).
Says that arrive while FLUSHERS statements are in flight wait and go together in the next one (one
round trip, one commit): a say in a quiet process is stored at once, in a busy one it waits for at
most the statements in flight. A room session hands over all the says its client has sent meanwhile
as one group (swarm/ws.py), so a busy room's messages go out to its members together.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError, OperationalError

from supportswarm.metrics.events import EventKind

MAX_BATCH = 200
FLUSHERS = 3  # statements in flight per process: the next batch is stored while the last one's frames go out


@dataclass(frozen=True)
class Say:
    swarm_id: int
    author_id: int
    body: str
    client_msg_id: str
    at: datetime


# `locked` takes the rooms' row locks in id order (two processes' batches cannot deadlock) and `head`
# advances each room's seq by its number of new messages; the locks serialise a room's writers until
# commit: commit order = seq order. A say whose client_msg_id is stored already (or appears earlier in
# the batch: a retry racing itself) takes no seq and reads `stored`. A say racing a concurrent retry of
# the same client_msg_id in another statement fails the unique constraint, which undoes the whole
# statement, seqs included, so seqs stay gap-free (the batcher then stores the batch's says one by one).
# The participant rows and SWARM_MESSAGE events are written only with their messages.
STORE_SQL = """
WITH input AS (
    SELECT * FROM unnest($1::int[], $2::int[], $3::text[], $4::text[], $5::timestamptz[])
        WITH ORDINALITY AS i (swarm_id, author_id, body, client_msg_id, created_at, ord)
), fresh AS (
    SELECT DISTINCT ON (i.swarm_id, i.client_msg_id) i.* FROM input i
    WHERE NOT EXISTS (SELECT FROM swarm_messages m WHERE m.swarm_id = i.swarm_id AND m.client_msg_id = i.client_msg_id)
    ORDER BY i.swarm_id, i.client_msg_id, i.ord
), locked AS (
    SELECT s.id FROM swarms s WHERE s.id IN (SELECT swarm_id FROM fresh) AND s.status = 'open'
    ORDER BY s.id FOR UPDATE
), head AS (
    UPDATE swarms s SET last_seq = s.last_seq + c.n
    FROM (SELECT swarm_id, count(*) AS n FROM fresh WHERE swarm_id IN (SELECT id FROM locked) GROUP BY swarm_id) c
    WHERE s.id = c.swarm_id
    RETURNING s.id, s.last_seq - c.n AS base, s.question_id
), numbered AS (
    SELECT f.*, h.base + row_number() OVER (PARTITION BY f.swarm_id ORDER BY f.ord) AS seq, h.question_id
    FROM fresh f JOIN head h ON h.id = f.swarm_id
), message AS (
    INSERT INTO swarm_messages (swarm_id, seq, author_id, body, client_msg_id, created_at)
    SELECT swarm_id, seq, author_id, body, client_msg_id, created_at FROM numbered ORDER BY swarm_id, seq
    RETURNING id, swarm_id, seq, client_msg_id
), member AS (
    INSERT INTO swarm_participants (swarm_id, user_id, joined_at, messages)
    SELECT swarm_id, author_id, min(created_at), count(*) FROM numbered GROUP BY swarm_id, author_id
    ON CONFLICT (swarm_id, user_id) DO UPDATE SET messages = swarm_participants.messages + EXCLUDED.messages
), logged AS (
    INSERT INTO events (kind, at, actor_id, question_id, swarm_id, data)
    SELECT $6, created_at, author_id, question_id, swarm_id, jsonb_build_object('seq', seq) FROM numbered
)
SELECT i.ord, m.id, m.seq, n.question_id, f.ord IS NULL AS stored
FROM input i
LEFT JOIN fresh f ON f.ord = i.ord
LEFT JOIN numbered n ON n.ord = i.ord
LEFT JOIN message m ON m.swarm_id = n.swarm_id AND m.seq = n.seq
ORDER BY i.ord
"""


async def store_messages(conn: BaseDBAsyncClient, says: list[Say]) -> list[dict[str, Any]]:
    """Store `says` in one statement; per say (in order) its `id`, `seq` and `question_id`, or `stored`
    (its client_msg_id was stored before), or id None (the swarm is not open, or does not exist)."""
    args = [[s.swarm_id for s in says], [s.author_id for s in says], [s.body for s in says],
            [s.client_msg_id for s in says], [s.at for s in says], EventKind.SWARM_MESSAGE.value]
    return await conn.execute_query_dict(STORE_SQL, args)


Stored = dict[str, Any] | Exception
"""What storing one say gave: its row (store_messages), or the exception that failed it."""


class SayBatcher:
    """Group commit of the says of one process (one per app: `batcher(broker)`)."""

    def __init__(self) -> None:
        self._waiting: list[tuple[list[Say], asyncio.Future[list[Stored]]]] = []
        self._flushers = 0

    async def store(self, says: list[Say]) -> list[Stored]:
        """Store `says` in order, in one statement (a group is never split over concurrent statements, so
        the seqs of a client's says follow the order it sent them). Per say: its row or its exception."""
        future: asyncio.Future[list[Stored]] = asyncio.get_running_loop().create_future()
        self._waiting.append((says, future))
        if self._flushers < FLUSHERS:
            self._flushers += 1
            task = asyncio.create_task(self._flush())
            _running.add(task)
            task.add_done_callback(_running.discard)
        return await future

    async def _flush(self) -> None:
        try:
            while self._waiting:
                taken = size = 0
                for says, _future in self._waiting:
                    if size and size + len(says) > MAX_BATCH:
                        break
                    taken, size = taken + 1, size + len(says)
                batch, self._waiting = self._waiting[:taken], self._waiting[taken:]
                await _store_batch(batch)
        finally:
            self._flushers -= 1


async def _store_batch(batch: list[tuple[list[Say], asyncio.Future[list[Stored]]]]) -> None:
    says = [say for group, _future in batch for say in group]
    try:
        rows = await _store(says)
    except asyncio.CancelledError:
        for _group, future in batch:
            future.cancel()
        raise
    for group, future in batch:
        if not future.done():
            future.set_result(rows[: len(group)])
        rows = rows[len(group):]


async def _store(says: list[Say]) -> list[Stored]:
    try:
        return list(await store_messages(connections.get("default"), says))
    except (IntegrityError, OperationalError) as exc:  # a race on one client_msg_id undid them all: one by one
        if len(says) == 1:
            return [exc]
        return [row for say in says for row in await _store([say])]
    except Exception as exc:  # e.g. the database is down: every say of the statement fails with it
        return [exc] * len(says)


_batchers: weakref.WeakKeyDictionary[Any, SayBatcher] = weakref.WeakKeyDictionary()  # per app (keyed by broker)
_running: set[asyncio.Task[None]] = set()


def batcher(owner: Any) -> SayBatcher:
    if (found := _batchers.get(owner)) is None:
        found = _batchers[owner] = SayBatcher()
    return found
