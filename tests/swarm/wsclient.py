"""A small test client for the room protocol over a real socket (the `websockets` package)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.swarm.conftest import Server


class Member:
    def __init__(self, ws: ClientConnection, welcome: dict[str, Any]) -> None:
        self.ws = ws
        self.welcome = welcome
        self.last_seq = max([m["seq"] for m in welcome["backlog"]], default=welcome["head"])

    async def next(self, *types: str, within: float = 5.0) -> dict[str, Any]:
        """The next frame of one of `types` (heartbeats and other types are skipped)."""
        async with asyncio.timeout(within):
            while True:
                frame = json.loads(await self.ws.recv())
                if frame["type"] in types:
                    if frame["type"] == "message":
                        self.last_seq = max(self.last_seq, frame["seq"])
                    return dict(frame)

    async def messages(self, n: int, within: float = 5.0) -> list[dict[str, Any]]:
        return [await self.next("message", within=within) for _ in range(n)]

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def say(self, body: str, client_msg_id: str | None = None) -> str:
        cmid = client_msg_id or str(uuid.uuid4())
        await self.send({"type": "say", "client_msg_id": cmid, "body": body})
        return cmid

    async def presence(self, online: set[str], within: float = 5.0) -> dict[str, Any]:
        """Wait for a presence frame whose online members are exactly `online` (usernames)."""
        async with asyncio.timeout(within):
            while True:
                frame = await self.next("presence", within=within)
                if {m["username"] for m in frame["members"] if m["status"] == "online"} == online:
                    return frame

    async def close_code(self, within: float = 5.0) -> int:
        try:
            async with asyncio.timeout(within):
                while True:
                    await self.ws.recv()
        except ConnectionClosed as exc:
            assert exc.rcvd is not None, "the server closed without a close frame"
            return exc.rcvd.code
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self.ws.close()


async def open_socket(server: Server, path: str, *, token: str | None = None, origin: str | None = None,
                      cookie: str | None = None) -> ClientConnection:
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if cookie:
        headers["Cookie"] = cookie
    return await connect(server.ws(path), additional_headers=headers, origin=origin,  # type: ignore[arg-type]
                         open_timeout=5, close_timeout=2)


async def join(server: Server, swarm_id: int, token: str, *, last_seq: int = 0) -> Member:
    ws = await open_socket(server, f"/ws/swarms/{swarm_id}", token=token)
    await ws.send(json.dumps({"type": "hello", "last_seq": last_seq}))
    async with asyncio.timeout(5):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "welcome":
                return Member(ws, frame)
