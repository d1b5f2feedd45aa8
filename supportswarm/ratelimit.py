"""Request rate limits and login backoff: the whole table is here, nowhere else.

Counters live in the broker (`Broker.hit_rate_limit`, fixed windows): in Redis when REDIS_URL is set, so
every replica counts against the same budget, in process otherwise. A request over its budget gets
429 with `Retry-After` (JSON under /api, a readable page elsewhere; `httpkit.handle_swarm_error`).

Two mechanisms:

- `RateLimitMiddleware`: per route, keyed by the logged-in user's id, else by client IP (signup and
  login always by IP). API calls and their HTML form twins share one bucket.
- `login_attempt`: failed logins per username + IP, in growing tiers, so guessing one account's
  password slows to a handful of tries per day while other accounts and other IPs are unaffected.

Room messages are limited on the websocket itself (`swarm/ws.py`: per connection and per user).
`Settings.rate_limits=False` turns all of it off (load tests; the test suite's default).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from supportswarm.errors import NotAuthenticated, RateLimited
from supportswarm.httpkit import handle_swarm_error
from supportswarm.realtime.broker import Broker, BrokerUnavailable
from supportswarm.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    hits: int
    window_s: float
    by_ip: bool = False  # True: always per client IP (no user yet: signup, login)


LIMITS: dict[str, Limit] = {
    "signup": Limit(10, 3600, by_ip=True),  # new accounts per IP per hour
    "login": Limit(30, 600, by_ip=True),  # login attempts per IP, whatever the username (spraying)
    "ask": Limit(10, 600),
    "answer": Limit(20, 600),
    "comment": Limit(30, 600),
    "vote": Limit(60, 60),
    "open_swarm": Limit(10, 600),
    "flag": Limit(20, 3600),  # per hour: plenty for a careful member, too few to flood the queue
    "similar": Limit(120, 60),  # search-as-you-type: each call embeds the text
    "room_message": Limit(60, 60),  # `say` frames per user, over all their connections (swarm/ws.py)
    "password_reset": Limit(5, 3600, by_ip=True),  # "forgot password?" forms per IP per hour
    "reset_mail": Limit(3, 3600),  # reset mails per username or address asked for, from any IP (`reset_mail_allowed`)
}

# (HTTP method, route name) -> bucket in LIMITS.
ROUTE_BUCKETS: dict[tuple[str, str], str] = {
    ("POST", "api_signup"): "signup",
    ("POST", "signup"): "signup",
    ("POST", "api_login"): "login",
    ("POST", "login"): "login",
    ("POST", "api_ask"): "ask",
    ("POST", "ask_post"): "ask",
    ("POST", "api_reject_suggestion"): "ask",  # "not my problem" posts the draft as a question
    ("POST", "reject_suggestion"): "ask",
    ("POST", "api_post_answer"): "answer",
    ("POST", "post_answer"): "answer",
    ("POST", "api_comment_question"): "comment",
    ("POST", "comment_question"): "comment",
    ("POST", "api_comment_answer"): "comment",
    ("POST", "comment_answer"): "comment",
    ("POST", "api_vote_question"): "vote",
    ("POST", "vote_question"): "vote",
    ("POST", "api_vote_answer"): "vote",
    ("POST", "vote_answer"): "vote",
    ("POST", "api_open_swarm"): "open_swarm",
    ("POST", "open_swarm"): "open_swarm",
    ("GET", "api_similar"): "similar",
    ("POST", "forgot_password"): "password_reset",
    ("GET", "api_search"): "similar",  # the search box embeds its text too
    ("GET", "search"): "similar",
    ("POST", "api_flag_question"): "flag",
    ("POST", "api_flag_answer"): "flag",
    ("POST", "api_flag_comment"): "flag",
    ("POST", "api_flag_message"): "flag",
}


def client_ip(scope: Scope) -> str:
    """The peer address; behind a proxy uvicorn's `proxy_headers` has already put the forwarded one here."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def bucket_key(bucket: str, scope: Scope) -> str:
    user = scope.get("state", {}).get("user")
    if user is None or LIMITS[bucket].by_ip:
        return f"rl:{bucket}:ip:{client_ip(scope)}"
    return f"rl:{bucket}:user:{user.id}"


async def hit(broker: Broker, bucket: str, key: str) -> float:
    """One request against `bucket`; the Retry-After in seconds, 0.0 while within budget.

    Fails open: the limits protect the service, and Redis being down is not the client's fault."""
    limit = LIMITS[bucket]
    try:
        return await broker.hit_rate_limit(key, limit.hits, limit.window_s)
    except BrokerUnavailable as exc:
        log.warning("rate limit %s not checked: %s", bucket, exc)
        return 0.0


class RateLimitMiddleware:
    """Counts requests to the routes of ROUTE_BUCKETS. Placed inside AuthMiddleware, so the user is known."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes: list[tuple[Route, str]] | None = None

    def _limited_routes(self, routes: list[BaseRoute]) -> list[tuple[Route, str]]:
        names = {name for _method, name in ROUTE_BUCKETS}
        return [(r, r.name) for r in routes if isinstance(r, Route) and r.name in names]

    def bucket_of(self, scope: Scope) -> str | None:
        if self._routes is None:  # the route list is only known once a request carries the app
            self._routes = self._limited_routes(list(getattr(scope.get("app"), "routes", [])))
        for route, name in self._routes:
            bucket = ROUTE_BUCKETS.get((scope["method"], name))
            if bucket is not None and route.matches(scope)[0] is Match.FULL:
                return bucket
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _enabled(scope):
            await self.app(scope, receive, send)
            return
        bucket = self.bucket_of(scope)
        broker: Broker | None = scope.get("state", {}).get("broker")
        if bucket is not None and broker is not None:
            wait = await hit(broker, bucket, bucket_key(bucket, scope))
            if wait > 0:
                exc = RateLimited(f"too many requests ({bucket}); retry in {max(1, round(wait))} s", retry_after=wait)
                response = await handle_swarm_error(Request(scope, receive), exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _enabled(scope: Scope) -> bool:
    app = scope.get("app")
    settings: Settings | None = getattr(getattr(app, "state", None), "settings", None)
    return settings is not None and settings.rate_limits


async def reset_mail_allowed(request: Request, identifier: object) -> bool:
    """Whether another reset mail may go to whoever `identifier` names: a flood of requests from many IPs
    must not fill one person's inbox. Counted whether or not the account exists, so it reveals nothing."""
    settings: Settings = request.app.state.settings
    broker: Broker | None = getattr(request.state, "broker", None)
    if not settings.rate_limits or broker is None:
        return True
    name = identifier.strip().lower() if isinstance(identifier, str) else ""
    key = "rl:reset_mail:" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return await hit(broker, "reset_mail", key) == 0.0


# --- login backoff ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tier:
    failures: int
    window_s: float


# Growing lockouts: 5 failures in 5 minutes locks until those 5 minutes are over, 10 in an hour until the
# hour is over, 20 in a day until the day is over.
LOGIN_TIERS = (Tier(5, 300), Tier(10, 3600), Tier(20, 86400))


class LoginBackoff:
    """Failed logins per username + IP, on the broker's fixed-window counters.

    The broker counts and cannot be read without counting, so every attempt costs one unit when it is
    checked (before the password is verified) and a failure one more: a tier allows `failures` failed
    logins (or twice as many successful ones) per window. Once over, every attempt is refused with the
    window's remaining time, before the password is looked at, so a right guess is not revealed either.
    """

    def __init__(self, broker: Broker, username: object, ip: str) -> None:
        self.broker = broker
        name = username.strip().lower() if isinstance(username, str) else ""
        # Hashed: the key stays short whatever was typed, and no typed text (maybe a password) is stored.
        self.key = "login:" + hashlib.sha256(f"{name}\x00{ip}".encode("utf-8", "surrogatepass")).hexdigest()[:40]

    async def spend(self) -> None:
        """One unit on every tier: once before the password is verified, once more after a failure.
        Raises RateLimited when a tier is over its budget."""
        waits = [await hit_tier(self.broker, f"{self.key}:{i}", tier) for i, tier in enumerate(LOGIN_TIERS)]
        if max(waits) > 0:
            raise RateLimited(_locked_detail(max(waits)), retry_after=max(waits))


async def hit_tier(broker: Broker, key: str, tier: Tier) -> float:
    try:
        return await broker.hit_rate_limit(key, 2 * tier.failures, tier.window_s)
    except BrokerUnavailable as exc:
        log.warning("login backoff not checked: %s", exc)
        return 0.0


def _locked_detail(wait: float) -> str:
    return f"too many failed logins for this account from your address; try again in {max(1, round(wait))} s"


@asynccontextmanager
async def login_attempt(request: Request, username: object) -> AsyncIterator[None]:
    """Wrap one password check: refused (RateLimited) while locked; a NotAuthenticated inside counts as a
    failure and may itself turn into RateLimited when it crosses a tier."""
    settings: Settings = request.app.state.settings
    broker: Any = getattr(request.state, "broker", None)
    if not settings.rate_limits or broker is None:
        yield
        return
    backoff = LoginBackoff(broker, username, client_ip(request.scope))
    await backoff.spend()
    try:
        yield
    except NotAuthenticated:
        await backoff.spend()
        raise
