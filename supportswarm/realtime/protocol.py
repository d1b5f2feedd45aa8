"""Wire types of the swarm rooms: broker envelopes, channel names, frame/event types and close codes.

Stdlib only: both the web app and the worker import this module (STYLE.md C2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

INBOX_CHANNEL = "inbox"
ACCOUNTS_CHANNEL = "accounts"  # "account" envelopes {user_id}: end that user's sockets (accounts/live.py)
ACCOUNT_EVENT = "account"


def swarm_channel(swarm_id: int) -> str:
    """Broker channel of one swarm room."""
    return f"swarm:{swarm_id}"


def user_channel(user_id: int) -> str:
    """Broker channel for notifications addressed to one user."""
    return f"user:{user_id}"


class FrameType(StrEnum):
    """`type` of a client -> server websocket frame."""

    HELLO = "hello"
    SAY = "say"
    TYPING = "typing"
    MARK_SOLUTION = "mark_solution"
    LEAVE = "leave"


class EventType(StrEnum):
    """`type` of a server -> client websocket event."""

    WELCOME = "welcome"
    MESSAGE = "message"
    PRESENCE = "presence"
    TYPING = "typing"
    RESOLVED = "resolved"
    MESSAGE_UPDATE = "message_update"  # a stored message as it reads now (e.g. hidden by a moderator)
    ERROR = "error"
    HEARTBEAT = "heartbeat"
    RECONNECT = "reconnect"


class CloseCode(IntEnum):
    """Websocket close codes used by the swarm endpoint."""

    BAD_FRAME = 4400
    NOT_AUTHENTICATED = 4401
    FORBIDDEN = 4403
    NOT_FOUND = 4404
    TOO_FAST = 4429
    # The client fell behind its bounded send queue; it reconnects and resumes from its last_seq.
    SLOW_CONSUMER = 4008
    # Server restart or maximum connection lifetime: reconnect (resume makes it lossless).
    GOING_AWAY = 4001


@dataclass(frozen=True, kw_only=True, slots=True)
class Envelope:
    """A broker notification. The database holds the truth; an envelope only says "something happened".

    `channel` is where it is published (see `swarm_channel`), `type`/`op` follow Zulip's pair
    (e.g. type="message", op="add"), `data` is the JSON payload and `seq` is the per-room sequence
    number assigned by PostgreSQL for stored room messages (None for ephemeral events such as typing).
    """

    channel: str
    type: str
    op: str = ""
    data: dict[str, Any]
    seq: int | None = None
    _data_json: str | None = field(default=None, init=False, repr=False, compare=False)

    def data_json(self) -> str:
        """`data` as the JSON text of a websocket frame, encoded once however many sockets it goes to: the
        same envelope reaches every local subscriber, and a room of 1,000 would otherwise encode it 1,000
        times (bench/README.md, "Swarm rooms")."""
        text = self._data_json
        if text is None:
            text = dumps(self.data)
            object.__setattr__(self, "_data_json", text)  # a cache of `data`, not state: still immutable
        return text


def dumps(frame: dict[str, Any]) -> str:
    """A websocket frame as compact JSON text."""
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False, default=str)


def encode(env: Envelope) -> str:
    """Serialise an envelope to compact JSON."""
    payload = {"channel": env.channel, "type": env.type, "op": env.op, "data": env.data, "seq": env.seq}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def decode(raw: str | bytes) -> Envelope:
    """Parse `encode` output; raise ValueError on anything that is not a well-formed envelope."""
    try:
        obj = json.loads(raw)
    except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"envelope is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ValueError("envelope must be a JSON object")
    channel, type_, op = obj.get("channel"), obj.get("type"), obj.get("op", "")
    data, seq = obj.get("data", {}), obj.get("seq")
    if not (isinstance(channel, str) and isinstance(type_, str) and isinstance(op, str)):
        raise ValueError("envelope channel, type and op must be strings")
    if not isinstance(data, dict):
        raise ValueError("envelope data must be an object")
    # bool is an int subclass; a True seq is a bug on the sending side, not a sequence number.
    if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int)):
        raise ValueError("envelope seq must be an integer or null")
    return Envelope(channel=channel, type=type_, op=op, data=data, seq=seq)
