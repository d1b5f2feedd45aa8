"""A real HTTP receiver on a free loopback port: it checks the signature and answers as scripted."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    signature_ok: bool


@dataclass
class Receiver:
    """Answers each POST with the next scripted status (then 200), or 401 when the signature is wrong."""

    url: str = ""
    secret: str = ""
    script: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    on_request: Callable[[], Awaitable[object]] | None = None

    def signature_ok(self, headers: dict[str, str], body: bytes) -> bool:
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(headers.get("x-supportswarm-signature", ""), expected)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        good = self.signature_ok(headers, body)
        self.requests.append(Received(headers, body, good))
        if self.on_request is not None:
            await self.on_request()
        status = (self.script.pop(0) if self.script else 200) if good else 401
        extra = "Location: http://127.0.0.1:9/elsewhere\r\n" if 300 <= status < 400 else ""
        writer.write(f"HTTP/1.1 {status} Scripted\r\nContent-Length: 0\r\n{extra}Connection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()
        await writer.wait_closed()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    server = await asyncio.start_server(rec.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    rec.url = f"http://127.0.0.1:{port}/hooks/supportswarm"
    async with server:
        yield rec
