"""Per-process websocket registry and send pump (STYLE.md C5.5).

Every socket gets a bounded outgoing queue drained by its own writer task, so fan-out never waits on
a client: `push` is synchronous and a socket whose queue overflows is closed with 4008 (it resumes
from its `last_seq`). A frame pushed while nothing is queued or in flight is written at once, in the
pusher's task, as long as the socket takes it without waiting (the usual case); only a send that must
wait continues in a task of its own. Benchmarked in bench/swarm_ws.py: a hop through the queue and the
writer task per member tripled the cost of a delivery against a server that writes to each socket in turn.
The writer also sends heartbeats (~30 s + jitter, Zulip) and ends a connection
after a maximum lifetime with a `reconnect` frame and close 4001 (Polar), which resume makes lossless.
`Hub.shutdown` does the same for every socket when the process stops.

The hub knows sockets only through the small `Socket` protocol (`direct_socket` wraps Starlette's
WebSocket), and no domain: what to send is decided by the endpoint that owns the connection.
Web-only: workers publish through the broker and never touch sockets (STYLE.md C2).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from supportswarm import telemetry
from supportswarm.realtime.protocol import CloseCode, EventType, dumps

log = logging.getLogger(__name__)


class Socket(Protocol):
    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


SERVER_SEND = "supportswarm.server_send"


class ServerSendMiddleware:
    """Keeps the server's own ASGI `send` of each websocket in its scope, for `direct_socket`. Outermost:
    every wrapper of `send` below it (Starlette's two exception-handler senders, UnavailableMiddleware's) only
    watches responses start and connections close, so frames may pass them by."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[SERVER_SEND] = send
        await self.app(scope, receive, send)


class DirectSocket:
    """An accepted Starlette WebSocket whose frames go straight to the server's `send`: four calls fewer per
    frame, which bench/swarm_ws.py (phase t) counts in the tens of thousands a second. Closing still goes
    through Starlette, which tracks the connection's state."""

    def __init__(self, websocket: WebSocket, send: Send) -> None:
        self._websocket, self._send = websocket, send

    async def send_text(self, data: str) -> None:
        await self._send({"type": "websocket.send", "text": data})

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        await self._websocket.close(code, reason)


def direct_socket(websocket: WebSocket) -> Socket:
    """`websocket` as the hub's Socket: direct (DirectSocket) under ServerSendMiddleware, else as it is."""
    send: Send | None = websocket.scope.get(SERVER_SEND)
    return websocket if send is None else DirectSocket(websocket, send)


class ConnectionClosed(Exception):
    """The connection ended (closed by the hub, the client or a failed send)."""


@dataclass(frozen=True, kw_only=True)
class HubConfig:
    queue_size: int = 256
    """Frames waiting for one socket before it counts as a slow consumer (closed with 4008)."""
    heartbeat_s: float = 30.0
    """Idle seconds before a `heartbeat` frame; each connection adds up to `heartbeat_jitter_s`."""
    heartbeat_jitter_s: float = 10.0
    max_lifetime_s: float = 600.0
    """After this (plus up to 10% jitter, so reconnects spread out) a connection gets `reconnect` + 4001."""
    send_timeout_s: float = 10.0
    """A single send that takes longer than this closes the socket as a slow consumer."""


Frame = dict[str, Any] | str
"""A frame to send: an object, or its JSON text when the same frame goes to many sockets (encoded once)."""


def _text(frame: Frame) -> str:
    return frame if isinstance(frame, str) else dumps(frame)


class Connection:
    """One socket: a bounded queue of encoded frames and the writer task that drains it."""

    def __init__(self, socket: Socket, *, config: HubConfig, key: str, clock: Callable[[], float]) -> None:
        self.socket = socket
        self.key = key
        self.config = config
        self._clock = clock
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=config.queue_size)
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self._writer: asyncio.Task[None] | None = None
        self._sending = False  # the writer is in a send
        self._inflight: asyncio.Task[None] | None = None  # an eager send that had to wait
        self._deadline = clock() + config.max_lifetime_s * (1 + 0.1 * random.random())
        self._heartbeat = config.heartbeat_s + config.heartbeat_jitter_s * random.random()

    def push(self, frame: Frame) -> bool:
        """Queue `frame` without waiting. On overflow the socket is closed with 4008 and False returned."""
        if self.closed.is_set():
            return False
        if not self._sending and self._queue.empty() and (self._inflight is None or self._inflight.done()):
            return self._send_now(_text(frame))
        try:
            self._queue.put_nowait(_text(frame))
        except asyncio.QueueFull:
            log.info("websocket %s fell behind; closing it (it resumes)", self.key)
            self._close_soon(CloseCode.SLOW_CONSUMER, "too slow; reconnect and resume")
            return False
        return True

    def _send_now(self, text: str) -> bool:
        try:
            self._inflight = start_eagerly(self.socket.send_text(text))
        except Exception as exc:  # a failed send means the client is gone
            log.debug("websocket %s send failed: %r", self.key, exc)
            self._close_soon(1006, "")
            return False
        if self._inflight is not None:
            self._inflight.add_done_callback(self._after_waiting)
        return True

    def _after_waiting(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:  # the client went away during the wait
            self._close_soon(1006, "")

    async def put(self, frame: Frame) -> None:
        """Queue `frame`, waiting for room: for a connection's own producer (e.g. a long backlog), which
        should be paced by its client instead of overflowing. Raises ConnectionClosed once closed."""
        if self.closed.is_set():
            raise ConnectionClosed(self.key)
        if not self._queue.full():  # the usual case: no waiting, and no futures to make
            self._queue.put_nowait(_text(frame))
            return
        put = asyncio.ensure_future(self._queue.put(_text(frame)))
        closed = asyncio.ensure_future(self.closed.wait())
        try:
            await asyncio.wait([put, closed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not put.done():
                put.cancel()
        if not put.done() or put.cancelled():
            raise ConnectionClosed(self.key)

    async def close(self, code: int, reason: str = "", *, final: dict[str, Any] | None = None) -> None:
        """Stop the writer, optionally send one last frame (bypassing the queue), close the socket. Idempotent."""
        if self.closed.is_set():
            return
        self.close_code = code
        self.closed.set()
        # Shielded: the caller is often a task that setting `closed` gets cancelled (a session's reader
        # handling `leave`, the inbox pump); the close frame must go out all the same.
        task = asyncio.ensure_future(self._shut(code, reason, final, asyncio.current_task()))
        _background.add(task)
        task.add_done_callback(_background.discard)
        await asyncio.shield(task)

    async def _shut(self, code: int, reason: str, final: dict[str, Any] | None, caller: asyncio.Task[Any] | None
                    ) -> None:
        for task in (self._writer, self._inflight):
            if task is not None and task is not caller and not task.done():
                task.cancel()
                await asyncio.wait([task])
        with contextlib.suppress(Exception):  # the client may be gone already; closing is best effort
            async with asyncio.timeout(2.0):
                if final is not None:
                    await self.socket.send_text(dumps(final))
                await self.socket.close(code, reason)

    def _close_soon(self, code: int, reason: str) -> None:
        task = asyncio.get_running_loop().create_task(self.close(code, reason))
        _background.add(task)
        task.add_done_callback(_background.discard)

    def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write(), name=f"ws-writer:{self.key}")

    async def _write(self) -> None:
        try:
            await self._write_loop()
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            await self.close(CloseCode.SLOW_CONSUMER, "too slow; reconnect and resume")
        except Exception as exc:  # a failed send means the client is gone
            log.debug("websocket %s send failed: %r", self.key, exc)
            await self.close(1006)

    async def _write_loop(self) -> None:
        while True:
            now = self._clock()
            if now >= self._deadline:
                await self.close(CloseCode.GOING_AWAY, "connection lifetime reached",
                                 final={"type": EventType.RECONNECT, "reason": "lifetime"})
                return
            if not self._queue.empty():  # a burst: no timer to arm for the heartbeat
                text = self._queue.get_nowait()
            else:
                try:
                    async with asyncio.timeout(min(self._heartbeat, self._deadline - now)):
                        text = await self._queue.get()
                except TimeoutError:
                    if self._clock() < self._deadline:
                        text = dumps({"type": EventType.HEARTBEAT})
                    else:
                        continue
            self._sending = True
            try:
                async with asyncio.timeout(self.config.send_timeout_s):
                    if self._inflight is not None:  # an eager send that had to wait goes first
                        await self._inflight
                    await self.socket.send_text(text)
            finally:
                self._sending = False


_background: set[asyncio.Task[None]] = set()


def start_eagerly(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run `coro` in the caller's task until it first waits: None if it finished without waiting, else the
    task that finishes it (raising from the first step is the caller's). What Python 3.12's eager tasks do."""
    try:
        waiting_for = coro.send(None)
    except StopIteration:
        return None
    task = asyncio.ensure_future(_Resumed(coro, waiting_for).run())
    _background.add(task)
    task.add_done_callback(_finished_eager)
    return task


def _finished_eager(task: asyncio.Task[None]) -> None:
    _background.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved here: the failure was handled where it happened


class _Resumed:
    """A started coroutine, continued from the future it is waiting for, as `yield from` would."""

    def __init__(self, coro: Coroutine[Any, Any, None], waiting_for: Any) -> None:
        self._coro, self._waiting_for = coro, waiting_for

    async def run(self) -> None:
        await self

    def __await__(self) -> Generator[Any, Any, None]:
        value = self._waiting_for
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # cancellation included: the coroutine sees it where it waits
                try:
                    value = self._coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    value = self._coro.send(sent)
                except StopIteration:
                    return


class Hub:
    """The connections of this process. Created in the app lifespan; `shutdown()` in its teardown."""

    def __init__(self, config: HubConfig | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or HubConfig()
        self._clock = clock
        self._connections: dict[str, Connection] = {}
        self._by_user: dict[int, set[Connection]] = {}
        self._ids = itertools.count(1)
        self._shutting_down = False

    def __len__(self) -> int:
        return len(self._connections)

    @contextlib.asynccontextmanager
    async def connect(self, socket: Socket, *, label: str = "ws", user_id: int | None = None
                      ) -> AsyncIterator[Connection]:
        """Register an accepted socket (of `user_id`, for `close_user`) and start its writer; on exit stop it
        and close the socket (1000)."""
        if self._shutting_down:
            await socket.close(CloseCode.GOING_AWAY, "server is restarting")
            raise ConnectionClosed("hub is shutting down")
        key = f"{label}-{next(self._ids)}-{random.getrandbits(32):08x}"
        conn = Connection(socket, config=self.config, key=key, clock=self._clock)
        self._connections[key] = conn
        if user_id is not None:
            self._by_user.setdefault(user_id, set()).add(conn)
        conn.start()
        telemetry.WS_OPEN.inc()
        try:
            yield conn
        finally:
            telemetry.WS_OPEN.dec()
            self._connections.pop(key, None)
            if user_id is not None and (mine := self._by_user.get(user_id)) is not None:
                mine.discard(conn)
                if not mine:
                    del self._by_user[user_id]
            await conn.close(1000)

    async def close_user(self, user_id: int, reason: str) -> int:
        """Send `reconnect` + 4001 to every socket of `user_id`: they come back through authentication and
        the room's permission check (e.g. after an admin deactivated or demoted them). Returns how many."""
        conns = list(self._by_user.get(user_id, ()))
        await asyncio.gather(*(c.close(CloseCode.GOING_AWAY, "account changed; reconnect",
                                       final={"type": EventType.RECONNECT, "reason": reason}) for c in conns),
                             return_exceptions=True)
        return len(conns)

    async def shutdown(self) -> None:
        """Tell every client to reconnect (to another replica) and close: resume makes it lossless."""
        self._shutting_down = True
        conns = list(self._connections.values())
        await asyncio.gather(
            *(c.close(CloseCode.GOING_AWAY, "server is restarting",
                      final={"type": EventType.RECONNECT, "reason": "shutdown"}) for c in conns),
            return_exceptions=True,
        )
