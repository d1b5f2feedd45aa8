"""Swarm fixtures: the in-process app's resources, and real uvicorn servers sharing PostgreSQL and Redis."""

from __future__ import annotations

import contextlib

# --- real servers ------------------------------------------------------------------------------------------
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from supportswarm.db import ConnectionParams
from supportswarm.ops import WS_PROTOCOL
from tests.conftest import REDIS_URL

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start(pg: ConnectionParams, data_dir: Path, namespace: str) -> Server:
    port = _free_port()
    env = os.environ | {
        "DATABASE_URL": pg.url(), "SECRET_KEY": "e2e-secret", "REDIS_URL": REDIS_URL,
        "SUPPORTSWARM_REDIS_NAMESPACE": namespace, "SUPPORTSWARM_DATA_DIR": str(data_dir),
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
    }
    log = data_dir / f"server-{port}.log"
    with log.open("wb") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "supportswarm.cli:server_app", "--host", "127.0.0.1",
             "--port", str(port), "--ws", WS_PROTOCOL, "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    return Server(port, proc, log)


def _wait_until_responds(server: Server, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{server.http}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server did not answer /healthz in {timeout_s}s:\n{server.log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def servers(pg_params: ConnectionParams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    """Two app processes sharing one database over Redis, like two replicas behind a load balancer.
    A random namespace keeps their channels apart from anything else on the same Redis."""
    with running_servers(pg_params, tmp_path_factory.mktemp("servers"), f"sstest-{uuid.uuid4().hex[:10]}:") as started:
        yield started


@contextlib.contextmanager
def running_servers(pg_params: ConnectionParams, data_dir: Path, namespace: str, count: int = 2
                    ) -> Iterator[list[Server]]:
    """`count` app processes on one database and one Redis namespace; stopped (or reaped, if killed) after."""
    started = [_start(pg_params, data_dir, namespace) for _ in range(count)]
    try:
        for server in started:
            _wait_until_responds(server)
        yield started
    finally:
        for server in started:
            if server.proc.poll() is None:
                server.proc.terminate()
        for server in started:
            try:
                server.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait()
