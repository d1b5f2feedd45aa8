"""Expected failures. Each has a stable `code` that clients branch on, and an HTTP status."""

from __future__ import annotations

from typing import Any


class SwarmError(Exception):
    code = "error"
    status = 400

    def __init__(self, detail: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        if code is not None:
            self.code = code

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "detail": self.detail}
        if self.field is not None:
            body["field"] = self.field
        return {"error": body}


class InvalidInput(SwarmError):
    code = "invalid_input"
    status = 400


class NotAuthenticated(SwarmError):
    code = "not_authenticated"
    status = 401


class Forbidden(SwarmError):
    code = "forbidden"
    status = 403


class NotFound(SwarmError):
    code = "not_found"
    status = 404


class Conflict(SwarmError):
    code = "conflict"
    status = 409


class RoomClosed(Conflict):
    code = "room_closed"


class PayloadTooLarge(SwarmError):
    code = "payload_too_large"
    status = 413


class RateLimited(SwarmError):
    code = "rate_limited"
    status = 429

    def __init__(self, detail: str, *, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(SwarmError):
    code = "unavailable"
    status = 503


class ConfigurationError(Exception):
    """The deployment is misconfigured; raised at start-up, never inside a request."""
