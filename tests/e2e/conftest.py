"""Browser tests: a real server (`supportswarm serve`: uvicorn) on a free port against the test database,
driven by Playwright with Debian's Chromium (never a downloaded browser). Screenshots: test-artifacts/e2e/.

The server loads the real embedding model, so suggestions are the product's own; the test process seeds
content through the domain services with the same model (the `embedder` fixture is overridden)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from embeddings import Embedder
from supportswarm.db import ConnectionParams

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
    "--no-first-run", "--disable-component-update", "--disable-sync",
]

if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:  # .ci/run installs it with apt-get
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

from playwright.async_api import Browser, ConsoleMessage, Page, ViewportSize, async_playwright  # noqa: E402

DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


def collect_errors(page: Page) -> list[str]:
    """Uncaught script errors and CSP refusals: a page that throws, or whose script or style the policy
    blocked (an inline one), is broken even when it looks right."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def console(message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            errors.append(message.text)

    page.on("console", console)
    return errors


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_until_ready(server: Server, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server did not answer /healthz in {timeout_s}s:\n{server.log.read_text()[-3000:]}")


@pytest.fixture(scope="package")  # one server for the browser tests: it only holds state in the database
def server(pg_params: ConnectionParams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One single-node server (in-process broker and jobs, no Redis) on the shared test database."""
    data_dir = tmp_path_factory.mktemp("e2e-server")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"} | {
        "DATABASE_URL": pg_params.url(), "SECRET_KEY": "e2e-secret", "SUPPORTSWARM_DATA_DIR": str(data_dir),
        "SUPPORTSWARM_RATE_LIMITS": "0", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
    }
    log = data_dir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            # `supportswarm serve`, the single-node command: its in-process job queue runs the job functions.
            [sys.executable, "-m", "supportswarm.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    started = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        _wait_until_ready(started)
        # The model loads on first use: pay for it here, not inside the first suggestion's wait.
        httpx.get(f"{started.url}/api/v1/similar", params={"q": "warm up the model"}, timeout=120.0)
        yield started
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if ARTIFACTS.exists():
            shutil.copy(log, ARTIFACTS / "server.log")


@pytest.fixture
def embedder(real_embedder: Embedder) -> Embedder:
    """Seeded questions are embedded with the model the server matches with."""
    return real_embedder


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()
