"""The ceilings for bench/swarm_ws.py: a bare Starlette websocket broadcast server, optionally storing each message.

It speaks just enough of the room protocol for bench/wsclient.py's clients (hello -> welcome, say ->
message to every member with a per-room seq) and does nothing else: no authentication, no broker, no
presence, no per-socket queue. What the real room does on top of this (store each message in PostgreSQL
first, fan out through the broker, resume, presence) is what the comparison prices.

With BARE_DATABASE_URL set, each message is first stored by one INSERT (one round trip, autocommit) under
a per-room lock, as the room serialises its writers: the second ceiling, what persistence alone costs.

Run: .venv/bin/python -m uvicorn bench.bare_broadcast:app --ws websockets-sansio --ws-per-message-deflate false
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

DATABASE_URL = os.environ.get("BARE_DATABASE_URL")
rooms: dict[int, set[WebSocket]] = {}
heads: dict[int, int] = {}
locks: dict[int, asyncio.Lock] = {}
pool: asyncpg.Pool | None = None


def dumps(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


async def broadcast(room_id: int, frame: dict[str, Any]) -> None:
    if pool is None:
        await send(room_id, frame)
        return
    async with locks.setdefault(room_id, asyncio.Lock()):  # stored and sent in seq order, as the room does
        await send(room_id, frame, pool)


async def send(room_id: int, frame: dict[str, Any], store: asyncpg.Pool | None = None) -> None:
    heads[room_id] = seq = heads.get(room_id, 0) + 1
    at = datetime.now(UTC)
    if store is not None:
        await store.execute("INSERT INTO bare_messages (room_id, seq, body, client_msg_id, created_at) "
                            "VALUES ($1, $2, $3, $4, $5)", room_id, seq, frame.get("body"), frame.get("client_msg_id"),
                            at)
    text = dumps({"type": "message", "seq": seq, "client_msg_id": frame.get("client_msg_id"),
                  "author": None, "body": frame.get("body"), "at": at.isoformat()})
    for member in list(rooms[room_id]):  # encoded once, written to each socket in turn
        try:
            await member.send_text(text)
        except Exception:  # that member is gone; its own handler removes it
            rooms[room_id].discard(member)


async def room(websocket: WebSocket) -> None:
    room_id = int(websocket.path_params["id"])
    await websocket.accept()
    await websocket.receive_text()  # hello: there is no backlog to send
    members = rooms.setdefault(room_id, set())
    members.add(websocket)
    await websocket.send_text(dumps({"type": "welcome", "backlog": [], "head": heads.get(room_id, 0),
                                     "reset": False, "more": False}))
    try:
        while True:
            frame = json.loads(await websocket.receive_text())
            if frame.get("type") == "say":
                await broadcast(room_id, frame)
    except WebSocketDisconnect:
        pass
    finally:
        members.discard(websocket)


@asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    global pool
    if DATABASE_URL is None:
        yield
        return
    pool = await asyncpg.create_pool(DATABASE_URL, min_size=2, max_size=10)
    await pool.execute("CREATE TABLE IF NOT EXISTS bare_messages (id bigserial PRIMARY KEY, room_id integer NOT NULL, "
                       "seq integer NOT NULL, body text NOT NULL, client_msg_id varchar(64) NOT NULL, "
                       "created_at timestamptz NOT NULL)")
    try:
        yield
    finally:
        await pool.close()
        pool = None


app = Starlette(routes=[WebSocketRoute("/ws/swarms/{id:int}", room)], lifespan=lifespan)
