"""An in-process room client (httpx-ws on the ASGI app, same event loop as the test and the database)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect, aconnect_ws
from httpx_ws.transport import ASGIWebSocketTransport


class Room:
    def __init__(self, ws: AsyncWebSocketSession, welcome: dict[str, Any]) -> None:
        self.ws = ws
        self.welcome = welcome
        self.closed: int | None = None

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.ws.send_text(frame if isinstance(frame, str) else json.dumps(frame))

    async def next(self, *types: str, within: float = 5.0) -> dict[str, Any]:
        """The next frame of one of `types`; a close becomes {"type": "closed", "code": ...}."""
        try:
            while True:
                frame: dict[str, Any] = json.loads(await self.ws.receive_text(timeout=within))
                if frame["type"] in types:
                    return frame
        except WebSocketDisconnect as exc:
            self.closed = exc.code
            return {"type": "closed", "code": exc.code}

    async def say(self, client_msg_id: str, body: str) -> dict[str, Any]:
        """Send a `say` and return what answers it: its `message` echo, or the `error` about it."""
        await self.send({"type": "say", "client_msg_id": client_msg_id, "body": body})
        while True:
            frame = await self.next("message", "error", "closed")
            if frame["type"] == "closed" or frame.get("client_msg_id") == client_msg_id:
                return frame


@asynccontextmanager
async def open_socket(app: Any, path: str, headers: dict[str, str]) -> AsyncIterator[AsyncWebSocketSession]:
    async with httpx.AsyncClient(transport=ASGIWebSocketTransport(app=app), base_url="http://testserver") as c:
        async with aconnect_ws(path, c, headers=headers, session_class=AsyncWebSocketSession) as ws:
            yield ws


@asynccontextmanager
async def join(app: Any, swarm_id: int, headers: dict[str, str], *, last_seq: int = 0) -> AsyncIterator[Room]:
    async with open_socket(app, f"/ws/swarms/{swarm_id}", headers) as ws:
        await ws.send_text(json.dumps({"type": "hello", "last_seq": last_seq}))
        while True:
            frame = json.loads(await ws.receive_text(timeout=5))
            if frame["type"] == "welcome":
                break
        yield Room(ws, frame)
