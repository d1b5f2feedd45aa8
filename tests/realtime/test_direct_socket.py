"""Room frames written straight to the server's send (realtime/hub.py DirectSocket), on a real uvicorn."""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from supportswarm.ops import WS_PROTOCOL
from supportswarm.realtime.hub import DirectSocket, ServerSendMiddleware, direct_socket
from tests.swarm.helpers import wait_for


class Watching:
    """A middleware that wraps `send`, as Starlette's exception handling and ours do."""

    def __init__(self, app: ASGIApp, seen: list[str]) -> None:
        self.app, self.seen = app, seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def watched(message: Message) -> None:
            self.seen.append(message["type"])
            await send(message)

        await self.app(scope, receive, watched)


async def serve_and_connect(direct: bool) -> tuple[list[str], list[str], int | None, list[bool]]:
    """Frames and close code a client gets from an endpoint sending through `direct_socket`, what the
    wrapping middleware saw, and whether the endpoint got a DirectSocket."""
    seen: list[str] = []
    kinds: list[bool] = []

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        sock = direct_socket(websocket)
        kinds.append(isinstance(sock, DirectSocket))
        for i in range(3):
            await sock.send_text(f"frame {i}")
        await sock.close(4008, "too slow")

    middleware = [Middleware(ServerSendMiddleware)] if direct else []
    app = Starlette(routes=[WebSocketRoute("/ws", endpoint)], middleware=[*middleware, Middleware(Watching, seen=seen)])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, ws=WS_PROTOCOL, log_level="warning",
                                           lifespan="off"))
    serving = asyncio.create_task(server.serve())
    try:
        async def started() -> bool:
            return server.started

        await wait_for(started, 10.0)
        frames: list[str] = []
        code = None
        async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
            try:
                async for frame in ws:
                    frames.append(str(frame))
            except ConnectionClosed:
                pass
            code = ws.close_code
    finally:
        server.should_exit = True
        await serving
    return frames, seen, code, kinds


async def test_frames_pass_the_wrappers_by_and_the_close_goes_through_starlette() -> None:
    frames, seen, code, kinds = await serve_and_connect(direct=True)
    assert kinds == [True]
    assert frames == ["frame 0", "frame 1", "frame 2"] and code == 4008
    assert seen == ["websocket.accept", "websocket.close"], "frames skip the wrappers; accept and close do not"


async def test_without_the_middleware_the_websocket_sends_itself() -> None:
    frames, seen, code, kinds = await serve_and_connect(direct=False)
    assert kinds == [False]
    assert frames == ["frame 0", "frame 1", "frame 2"] and code == 4008
    assert seen == ["websocket.accept"] + ["websocket.send"] * 3 + ["websocket.close"]
