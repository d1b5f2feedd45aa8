"""Real `supportswarm` processes for operations tests: started on free ports, waited for, always stopped."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.ops.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "supportswarm.cli"]


@dataclass
class Proc:
    """One `supportswarm` subprocess and its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM (a graceful stop, like `docker stop`), then SIGKILL if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode


def spawn(name: str, args: list[str], env: dict[str, str], workdir: Path, port: int | None = None) -> Proc:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen([*CLI, *args], cwd=ROOT, env=os.environ | env, stdout=out, stderr=subprocess.STDOUT)
    return Proc(name, proc, log, port)


def spawn_serve(name: str, env: dict[str, str], workdir: Path) -> Proc:
    port = free_port()
    return spawn(name, ["serve", "--host", "127.0.0.1", "--port", str(port)], env, workdir, port)


async def wait_ready(proc: Proc, path: str = "/healthz", timeout_s: float = 60.0) -> None:
    """Until `path` answers 200; fails at once with the log if the process died."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=proc.http, timeout=1.0) as client:
        while time.monotonic() < deadline:
            if proc.proc.poll() is not None:
                raise AssertionError(f"{proc.name} exited early:\n{proc.output()[-3000:]}")
            try:
                if (await client.get(path)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{proc.name} did not answer {path} within {timeout_s}s:\n{proc.output()[-3000:]}")


@contextmanager
def running(*procs: Proc) -> Iterator[None]:
    """Stops `procs` on exit; on a failure, prints the end of their logs (pytest shows it with the failure)."""
    try:
        yield
    except BaseException:
        for p in procs:
            print(f"--- {p.name} (exit {p.proc.poll()}) ---\n{p.output()[-4000:]}")
        raise
    finally:
        for p in procs:
            p.stop()


@dataclass
class Member:
    """A room member on a real socket: frames are read in order; heartbeats and unasked types are skipped."""

    ws: ClientConnection
    welcome: dict[str, Any]
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def next(self, *types: str, timeout_s: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):
            while True:
                frame: dict[str, Any] = json.loads(await self.ws.recv())
                self.seen.append(frame)
                if frame["type"] in types:
                    return frame

    async def say(self, body: str, client_msg_id: str) -> None:
        await self.ws.send(json.dumps({"type": "say", "client_msg_id": client_msg_id, "body": body}))


async def open_room(proc: Proc, swarm_id: int, token: str, last_seq: int = 0) -> ClientConnection:
    ws = await connect(proc.ws(f"/ws/swarms/{swarm_id}"), additional_headers={"Authorization": f"Bearer {token}"},
                       open_timeout=5, close_timeout=2)
    await ws.send(json.dumps({"type": "hello", "last_seq": last_seq}))
    return ws


async def join(proc: Proc, swarm_id: int, token: str, last_seq: int = 0) -> Member:
    ws = await open_room(proc, swarm_id, token, last_seq)
    member = Member(ws, {})
    member.welcome = await member.next("welcome")
    return member
