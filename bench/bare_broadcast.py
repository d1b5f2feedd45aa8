"""The ceiling for bench/swarm_ws.py: a bare Starlette websocket broadcast server.

It speaks just enough of the room protocol for bench/wsclient.py's clients (hello -> welcome, say ->
message to every member with a per-room seq) and does nothing else: no authentication, no database,
no broker, no presence, no per-socket queue. What the real room does on top of this (store each message
in PostgreSQL first, fan out through the broker, resume, presence) is what the comparison prices.

Run: .venv/bin/python -m uvicorn bench.bare_broadcast:app --ws websockets --ws-per-message-deflate false
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

rooms: dict[int, set[WebSocket]] = {}
heads: dict[int, int] = {}


def dumps(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


async def broadcast(room_id: int, frame: dict[str, Any]) -> None:
    heads[room_id] = seq = heads.get(room_id, 0) + 1
    text = dumps({"type": "message", "seq": seq, "client_msg_id": frame.get("client_msg_id"),
                  "author": None, "body": frame.get("body"), "at": datetime.now(UTC).isoformat()})
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


app = Starlette(routes=[WebSocketRoute("/ws/swarms/{id:int}", room)])
