"""The room websocket `/ws/swarms/{id}` and the inbox websocket `/ws/inbox` (README "Swarm protocol").

Resume, after message_bus and Zulip (STYLE.md C5.3): subscribe to the room channel first, then read
the backlog (seq > last_seq) from PostgreSQL in pages, then go live, skipping every seq <= the highest
sent and reading any gap from the database. So each member sees each message once, in order, whatever
the broker dropped and whichever replica it reconnects to.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from supportswarm import ratelimit
from supportswarm.accounts import permissions
from supportswarm.accounts.models import User
from supportswarm.accounts.sessions import same_origin
from supportswarm.errors import InvalidInput, NotAuthenticated, RateLimited, SwarmError
from supportswarm.realtime.broker import Broker, BrokerUnavailable, Subscription, SubscriptionLost
from supportswarm.realtime.hub import Connection, Frame, Hub, direct_socket
from supportswarm.realtime.protocol import (
    INBOX_CHANNEL,
    CloseCode,
    Envelope,
    EventType,
    FrameType,
    swarm_channel,
    user_channel,
)
from supportswarm.settings import Settings
from supportswarm.swarm import expertise, services
from supportswarm.swarm.models import Swarm
from supportswarm.swarm.rooms import PRESENCE_REFRESH_S, PRESENCE_TTL_S, LocalRoom, announce_presence, local_rooms
from supportswarm.swarm.store import Say

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 10.0
MAX_FRAME_BYTES = 16 * 1024
SAY_LIMIT = (10, 1.0)  # `say` frames per window per connection; over it: an error frame (rate_limited)
FRAME_LIMIT = (40, 1.0)  # frames of any type per window per connection; over it: close 4429
STRIKE_LIMIT = (5, 10.0)  # rate_limited errors per window before the connection is closed with 4429
TYPING_EVERY_S = 2.0  # typing notices faster than this are dropped, not errors
MAX_PIPELINED_SAYS = 32  # says read and not yet stored; beyond, the reader waits for the database
MAX_WAITING = 1000  # notifications a session keeps while it cannot take them; beyond: it catches up from the database
FRAME_TYPES = frozenset(FrameType)


class BadFrame(SwarmError):
    code = "bad_frame"
    status = 400


class TooFast(SwarmError):
    code = "too_fast"
    status = 429


def error_frame(exc: SwarmError, **extra: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": EventType.ERROR.value, "code": exc.code, "detail": exc.detail}
    if exc.field:
        frame["field"] = exc.field
    if isinstance(exc, RateLimited):
        frame["retry_after"] = round(exc.retry_after, 3)
    return frame | extra


def close_code(exc: SwarmError) -> int:
    """STYLE.md C7: 4000 + status % 1000, so 4400, 4401, 4403, 4404, 4409, 4429."""
    return 4000 + exc.status % 1000


async def reject(websocket: WebSocket, exc: SwarmError) -> None:
    """An `error` frame, then the close code of the error."""
    with contextlib.suppress(Exception):
        await websocket.send_text(json.dumps(error_frame(exc)))
        await websocket.close(close_code(exc), exc.detail[:120])


def origin_allowed(websocket: WebSocket, settings: Settings) -> bool:
    """Same host or an allowed Origin; no Origin at all only for bearer-token clients (browsers send one)."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return bool(websocket.scope.get("state", {}).get("auth_method") == "bearer")
    return same_origin(origin, websocket.headers.get("host", ""), settings.allowed_origins)


def parse_frame(text: str) -> dict[str, Any]:
    if len(text) > MAX_FRAME_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES:
        raise BadFrame(f"frames must be at most {MAX_FRAME_BYTES} bytes")
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        raise BadFrame("frames must be JSON") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str) or frame["type"] not in FRAME_TYPES:
        raise BadFrame(f"frames must be objects with a type in {', '.join(FrameType)}")
    return frame


def seq_field(frame: dict[str, Any], name: str) -> int:
    value = frame.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**31:
        raise InvalidInput(f"{name} must be a non-negative integer", field=name)
    return value


async def receive_text(websocket: WebSocket) -> str | None:
    """The next text frame; None when the client disconnected. Binary frames are bad frames."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return None
    text = message.get("text")
    if text is None:
        raise BadFrame("binary frames are not accepted")
    return str(text)


async def accept_room(websocket: WebSocket, settings: Settings) -> tuple[User, Swarm, int] | None:
    """Origin, authentication, room, permission, then the `hello` frame. None: refused (and closed)."""
    user: User | None = websocket.scope["state"].get("user")
    # Cross-site WebSocket hijacking needs credentials: refuse those in the handshake (HTTP 403). Without
    # credentials there is nothing to hijack, and the client gets the protocol's 4401 instead.
    if user is not None and not origin_allowed(websocket, settings):
        await websocket.close(CloseCode.FORBIDDEN)
        return None
    await websocket.accept()
    try:
        user = permissions.require_user(user)
        swarm = await services.get_swarm(int(websocket.path_params["id"]))
        await services.ensure_can_join(swarm, user, expert_reputation=settings.expert_reputation)
        async with asyncio.timeout(HELLO_TIMEOUT_S):
            text = await receive_text(websocket)
        if text is None:
            return None
        hello = parse_frame(text)
        if hello["type"] != FrameType.HELLO:
            raise BadFrame("the first frame must be hello")
        last_seq = seq_field(hello, "last_seq")
    except TimeoutError:
        await reject(websocket, BadFrame("no hello frame in time"))
        return None
    except InvalidInput as exc:
        await reject(websocket, BadFrame(exc.detail, field=exc.field))
        return None
    except SwarmError as exc:
        await reject(websocket, exc)
        return None
    return user, swarm, last_seq


async def room_socket(websocket: WebSocket) -> None:
    settings: Settings = websocket.app.state.settings
    accepted = await accept_room(websocket, settings)
    if accepted is None:
        return
    user, swarm, last_seq = accepted
    hub: Hub = websocket.state.hub
    async with hub.connect(direct_socket(websocket), label=f"swarm{swarm.id}", user_id=user.id) as conn:
        session = RoomSession(websocket, conn, swarm=swarm, user=user, broker=websocket.state.broker,
                              jobs=websocket.state.jobs, settings=settings)
        await session.run(last_seq)


class RoomSession:
    """One member's connection to one room: welcome + backlog, then the reader; notifications come from the
    process's LocalRoom (rooms.py), which calls `on_envelope` for each in publish order."""

    def __init__(self, websocket: WebSocket, conn: Connection, *, swarm: Swarm, user: User, broker: Broker,
                 jobs: Any, settings: Settings) -> None:
        self.ws, self.conn, self.swarm, self.user = websocket, conn, swarm, user
        self.broker, self.jobs, self.settings = broker, jobs, settings
        self.channel = swarm_channel(swarm.id)
        self.presence_key = services.presence_member(user.id, conn.key)
        self.helper = permissions.is_helper(user, expert_reputation=settings.expert_reputation)
        self.highest = 0
        self._lock = asyncio.Lock()
        self._room: LocalRoom | None = None
        self._live = False  # the welcome is out: notifications may be sent
        self._waiting: deque[Envelope | None] = deque()  # None: catch up from the database
        self._drainer: asyncio.Task[None] | None = None
        self._says: list[Say] = []  # read from the client, not yet handed to the storer
        self._storer: asyncio.Task[None] | None = None
        self._ended = asyncio.Event()
        self._error: BaseException | None = None
        self._last_typing = 0.0
        self._responded = False  # a message of this user is stored: no later one can be the first response

    async def run(self, last_seq: int) -> None:
        try:  # first: nothing published from now on is lost
            self._room = await local_rooms(self.broker).join(self.swarm.id, self)
        except BrokerUnavailable:
            await self.conn.close(CloseCode.GOING_AWAY, "realtime service unavailable; retry",
                                  final={"type": EventType.RECONNECT.value, "reason": "broker"})
            return
        try:
            await self._start(last_seq)
            await self._serve()
        except SwarmError as exc:
            await self.conn.close(close_code(exc), exc.detail[:120], final=error_frame(exc))
        finally:
            await self._stop()

    async def _start(self, last_seq: int) -> None:
        assert self._room is not None
        await services.join_swarm(self.swarm, self.user, expert_reputation=self.settings.expert_reputation)
        self._room.online = services.online_user_ids(await self.broker.presence(self.channel))
        announce_presence(self.swarm.id, self.broker)
        await self._welcome(last_seq)
        self._live = True
        if self._waiting:
            self._drain_soon()

    async def _serve(self) -> None:
        tasks = [asyncio.create_task(coro) for coro in (self._read(), self.conn.closed.wait(), self._ended.wait())]
        try:
            done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
        errors = [task.exception() for task in done if not task.cancelled()] + [self._error]
        for exc in errors:
            if exc is not None:
                await self._close_for(exc)

    async def _close_for(self, exc: BaseException) -> None:
        if isinstance(exc, SwarmError):
            await self.conn.close(close_code(exc), exc.detail[:120], final=error_frame(exc))
        elif isinstance(exc, BrokerUnavailable):
            await self.conn.close(CloseCode.GOING_AWAY, "realtime service unavailable; retry",
                                  final={"type": EventType.RECONNECT.value, "reason": "broker"})
        else:
            log.error("swarm %s session failed", self.swarm.id, exc_info=exc)
            await self.conn.close(1011, "internal error")

    async def _stop(self) -> None:
        await self._says_stored()  # what the client said before it went is stored all the same
        if self._drainer is not None:
            self._drainer.cancel()
            await asyncio.wait([self._drainer])
        if self._room is not None:
            await self._room.leave(self)
        with contextlib.suppress(BrokerUnavailable):
            await self.broker.clear_presence(self.channel, self.presence_key)
            await self.broker.clear_presence(expertise.ONLINE_ROOM, self.presence_key)
        announce_presence(self.swarm.id, self.broker)

    # --- welcome and ordered delivery -------------------------------------------------------------------

    async def _welcome(self, last_seq: int) -> None:
        assert self._room is not None
        swarm = await services.get_swarm(self.swarm.id)  # after subscribing: the head is at least this
        reset = last_seq > swarm.last_seq  # a client from another database / a reset room: full state
        start = 0 if reset else last_seq
        page = await services.messages_after(swarm.id, start)
        members = await services.room_members(swarm.id, self._room.online)
        await self.conn.put({
            "type": EventType.WELCOME.value, "swarm": services.swarm_dict(swarm, swarm.question),
            "members": members, "backlog": page, "head": swarm.last_seq, "reset": reset,
            "more": len(page) == services.BACKLOG_PAGE, "you": services.author_dict(self.user),
        })
        async with self._lock:
            self.highest = page[-1]["seq"] if page else start
            if len(page) == services.BACKLOG_PAGE:
                await self._fill(None)

    async def _fill(self, upto: int | None) -> None:
        """Send stored messages after `highest` (up to `upto`) page by page, paced by this client. Holds the lock."""
        while True:
            page = await services.messages_after(self.swarm.id, self.highest, upto=upto)
            for frame in page:
                await self.conn.put(frame)
                self.highest = frame["seq"]
            if len(page) < services.BACKLOG_PAGE:
                return

    async def deliver(self, seq: int, frame: Frame) -> None:
        """Send room message `seq` in seq order exactly once: skip what was sent, read gaps from the database."""
        async with self._lock:
            if seq <= self.highest:
                return
            if seq > self.highest + 1:
                await self._fill(seq - 1)
            if seq > self.highest:
                self.conn.push(frame)
                self.highest = seq

    def on_envelope(self, envelope: Envelope) -> None:
        # The usual case is synchronous: the next message in order, nothing waiting, nobody filling. Else the
        # envelope waits its turn behind the welcome, the gap read or the envelopes before it (_drain).
        if self._live and self._drainer is None and not self._lock.locked():
            if envelope.type != EventType.MESSAGE or envelope.seq is None:
                self._show(envelope)
                return
            if envelope.seq <= self.highest:
                return
            if envelope.seq == self.highest + 1:
                self.conn.push(envelope.data_json())  # encoded once for every member in this process
                self.highest = envelope.seq
                return
        self._later(envelope)

    def catch_up(self) -> None:
        self._later(None)

    def end(self, error: BaseException | None) -> None:
        self._error = error
        self._ended.set()

    def _later(self, envelope: Envelope | None) -> None:
        if len(self._waiting) >= MAX_WAITING:  # too far behind: what was waiting is in the database
            self._waiting.clear()
            envelope = None
        self._waiting.append(envelope)
        if self._live and self._drainer is None:
            self._drain_soon()

    def _drain_soon(self) -> None:
        self._drainer = asyncio.create_task(self._drain(), name=f"room-drain:{self.conn.key}")

    async def _drain(self) -> None:
        try:
            while self._waiting:
                envelope = self._waiting.popleft()
                if envelope is None:
                    async with self._lock:
                        await self._fill(None)
                elif envelope.type == EventType.MESSAGE and envelope.seq is not None:
                    await self.deliver(envelope.seq, envelope.data_json())
                else:
                    self._show(envelope)
        except Exception as exc:  # the database is down, say: the session ends and the client resumes
            self.end(exc)
        finally:
            self._drainer = None

    def _show(self, envelope: Envelope) -> None:
        if envelope.type == EventType.TYPING and (envelope.data.get("user") or {}).get("id") == self.user.id:
            return  # one's own typing notice
        if envelope.type in (EventType.TYPING, EventType.PRESENCE, EventType.RESOLVED, EventType.MESSAGE_UPDATE):
            self.conn.push(envelope.data_json())

    # --- client frames --------------------------------------------------------------------------------

    async def _read(self) -> None:
        while True:
            text = await receive_text(self.ws)
            if text is None:
                return
            await self._limit("frames", FRAME_LIMIT, TooFast("too many frames; slow down"))
            frame = parse_frame(text)
            try:
                if await self._handle(frame):
                    return
            except (TooFast, BadFrame):
                raise
            except RateLimited as exc:
                self.conn.push(error_frame(exc, client_msg_id=frame.get("client_msg_id")))
                await self._limit("strikes", STRIKE_LIMIT, TooFast("too many messages; slow down"))
            except SwarmError as exc:
                self.conn.push(error_frame(exc, client_msg_id=frame.get("client_msg_id"), ref=frame["type"]))

    async def _limit(self, name: str, limit: tuple[int, float], exc: SwarmError) -> None:
        if not self.settings.rate_limits:
            return
        try:
            wait = await self.broker.hit_rate_limit(f"ws:{self.conn.key}:{name}", *limit)
        except BrokerUnavailable:
            return  # fail open: limits protect the room, the broker being down is not the client's fault
        if wait > 0:
            raise exc

    async def _user_limit(self) -> None:
        """`say` per user over all their connections and replicas: more sockets buy no more messages."""
        if self.settings.rate_limits:
            wait = await ratelimit.hit(self.broker, "room_message", f"rl:room_message:user:{self.user.id}")
            if wait > 0:
                raise RateLimited("too many messages; wait a moment", retry_after=wait)

    async def _handle(self, frame: dict[str, Any]) -> bool:
        """Dispatch one frame; True when the session should end (leave)."""
        kind = frame["type"]
        if kind != FrameType.SAY:  # frames take effect in the order sent: only a run of says is pipelined
            await self._says_stored()
        if kind == FrameType.SAY:
            await self._limit("say", SAY_LIMIT, RateLimited("too many messages; wait a moment", retry_after=1.0))
            await self._user_limit()
            await self._say(frame)
        elif kind == FrameType.TYPING:
            if time.monotonic() - self._last_typing >= TYPING_EVERY_S:
                self._last_typing = time.monotonic()
                await services.publish_typing(self.swarm.id, self.user, broker=self.broker)
        elif kind == FrameType.MARK_SOLUTION:
            answer = await services.resolve_swarm(self.swarm.id, self.user, frame.get("seq"), body=frame.get("body"),
                                                  broker=self.broker, jobs=self.jobs,
                                                  expert_reputation=self.settings.expert_reputation)
            self.conn.push({"type": EventType.RESOLVED.value, "answer_id": answer.id, "seq": frame.get("seq"),
                            "question_id": self.swarm.question.id})
        elif kind == FrameType.LEAVE:
            await services.leave_swarm(self.swarm, self.user)
            await self.conn.close(1000, "left")
            return True
        else:
            raise InvalidInput("hello is only the first frame", field="type")
        return False

    async def _say(self, frame: dict[str, Any]) -> None:
        """Hand the say to the storer and go on reading: a client's says sent together are stored together
        (one group, in order), where awaiting each one let a busy room's messages out one per statement."""
        self._says.append(services.new_say(self.swarm.id, self.user, frame.get("body"), frame.get("client_msg_id")))
        if self._storer is None:
            self._storer = asyncio.create_task(self._store_says(), name=f"room-says:{self.conn.key}")
        if len(self._says) >= MAX_PIPELINED_SAYS:  # the client outpaces the database: stop reading for now
            await self._says_stored()

    async def _says_stored(self) -> None:
        if self._storer is not None:
            await asyncio.wait([self._storer])

    async def _store_says(self) -> None:
        try:
            while self._says:
                says = list(self._says)
                self._says.clear()
                posted = await services.post_says(says, self.user, broker=self.broker, jobs=self.jobs,
                                                  first_response=not self._responded)
                for say, result in zip(says, posted, strict=True):
                    if isinstance(result, SwarmError):
                        self.conn.push(error_frame(result, client_msg_id=say.client_msg_id, ref=FrameType.SAY.value))
                        continue
                    self._responded = self._responded or result.created
                    if result.created or result.frame["seq"] > self.highest:
                        await self.deliver(result.frame["seq"], result.encoded())  # the echo, in order
                    else:
                        self.conn.push(result.frame)  # a retried say: the sender gets the stored message again
        except Exception as exc:  # the database is down, say: the session ends and the client resumes
            self.end(exc)
        finally:
            self._storer = None


# --- the inbox ------------------------------------------------------------------------------------------


async def inbox_socket(websocket: WebSocket) -> None:
    """Hints for the staff inbox (`inbox` events: refetch the ranked list) and personal `invitation`s."""
    settings: Settings = websocket.app.state.settings
    user: User | None = websocket.scope["state"].get("user")
    if user is not None and not origin_allowed(websocket, settings):
        await websocket.close(CloseCode.FORBIDDEN)
        return
    await websocket.accept()
    if user is None:
        await reject(websocket, NotAuthenticated("log in first"))
        return
    broker: Broker = websocket.state.broker
    hub: Hub = websocket.state.hub
    async with hub.connect(direct_socket(websocket), label="inbox", user_id=user.id) as conn:
        try:
            sub = await broker.subscribe([INBOX_CHANNEL, user_channel(user.id)])
        except BrokerUnavailable:
            await conn.close(CloseCode.GOING_AWAY, "realtime service unavailable; retry")
            return
        member = services.presence_member(user.id, conn.key)
        helper = permissions.is_helper(user, expert_reputation=settings.expert_reputation)
        conn.push({"type": EventType.WELCOME.value, "you": services.author_dict(user)})
        tasks = [asyncio.create_task(c) for c in (_inbox_pump(sub, conn), _inbox_read(websocket),
                                                  _inbox_presence(broker, member, helper), conn.closed.wait())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            await sub.close()
            with contextlib.suppress(BrokerUnavailable):
                await broker.clear_presence(expertise.ONLINE_ROOM, member)


async def _inbox_pump(sub: Subscription, conn: Connection) -> None:
    with contextlib.suppress(SubscriptionLost):  # hints only: the client refetches on reconnect
        async for envelope in sub:
            conn.push(envelope.data)
    await conn.close(CloseCode.GOING_AWAY, "reconnect", final={"type": EventType.RECONNECT.value})


async def _inbox_read(websocket: WebSocket) -> None:
    with contextlib.suppress(SwarmError):  # the inbox takes no commands; anything sent is ignored
        while await receive_text(websocket) is not None:
            pass


async def _inbox_presence(broker: Broker, member: str, helper: bool) -> None:
    while helper:
        with contextlib.suppress(BrokerUnavailable):
            await broker.set_presence(expertise.ONLINE_ROOM, [member], PRESENCE_TTL_S)
        await asyncio.sleep(PRESENCE_REFRESH_S)
    await asyncio.Event().wait()


routes = [
    WebSocketRoute("/ws/swarms/{id:int}", room_socket, name="ws_swarm"),
    WebSocketRoute("/ws/inbox", inbox_socket, name="ws_inbox"),
]
