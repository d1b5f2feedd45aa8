"""Accounts: registration, passwords, API tokens, roles, account settings and the admins' user list."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from supportswarm import validation
from supportswarm.accounts import permissions
from supportswarm.accounts.live import announce_account_change
from supportswarm.accounts.models import ApiToken, PasswordReset, Role, User
from supportswarm.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from supportswarm.realtime.broker import Broker

_hasher = PasswordHasher()
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,32}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,63}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 256
TOKEN_NAME_MAX = 64
USERS_PER_PAGE = 50
# last_seen_at is written at most this often per user: it answers "is this account in use", not "when exactly".
SEEN_EVERY = timedelta(minutes=5)


class WrongPassword(NotAuthenticated):
    """A signed-in user's current password did not match: bad input (400), and, being a NotAuthenticated,
    counted by the login backoff (`ratelimit.login_attempt`) like a failed login."""

    code = "wrong_password"
    status = 400


def check_password(password: object, field: str = "password") -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise InvalidInput(f"{field} must be at least {MIN_PASSWORD} characters", field=field)
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"{field} must be at most {MAX_PASSWORD} characters", field=field)
    return password


def _check_email(email: object) -> str | None:
    """An address, or None for "no address" (absent or empty)."""
    if email is None or email == "":
        return None
    if not isinstance(email, str) or len(email) > 254 or not EMAIL_RE.match(email):
        raise InvalidInput("email is not a valid address", field="email")
    return email


def _check_username(username: object) -> str:
    if not isinstance(username, str) or not USERNAME_RE.match(username):
        raise InvalidInput("username must be 3-32 letters, digits, '_', '.' or '-'", field="username")
    return username


def _check_role(role: object) -> Role:
    try:
        return Role(str(role))
    except ValueError:
        raise InvalidInput(f"role must be one of {', '.join(r.value for r in Role)}", field="role") from None


async def register(
    username: object, password: object, *, email: object = None, role: object = Role.CUSTOMER
) -> User:
    name = _check_username(username)
    secret = check_password(password)
    checked_role = _check_role(role)
    address = _check_email(email)
    if await User.filter(username__iexact=name).exists():
        raise Conflict(f"the username {name!r} is taken", field="username")
    try:
        return await User.create(
            username=name, password_hash=_hasher.hash(secret), email=address, role=checked_role
        )
    except IntegrityError:
        raise Conflict(f"the username {name!r} is taken", field="username") from None


async def authenticate(username: object, password: object) -> User:
    if not isinstance(username, str) or not isinstance(password, str) or len(password) > MAX_PASSWORD:
        raise NotAuthenticated("wrong username or password")
    user = await User.filter(username__iexact=username).first()
    if user is None or not user.is_active:
        _hasher.hash(password)  # the same work as a real check, so timing does not reveal usernames
        raise NotAuthenticated("wrong username or password")
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        raise NotAuthenticated("wrong username or password") from None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
        await user.save(update_fields=["password_hash"])
    return user


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_token(user: User, *, name: str = "") -> tuple[ApiToken, str]:
    """A new API token: the row (only its hash is stored) and the token itself, shown once."""
    token = "ss_" + secrets.token_urlsafe(32)
    row = await ApiToken.create(user=user, token_hash=token_hash(token), name=name[:TOKEN_NAME_MAX])
    return row, token


async def create_token(user: User, *, name: str = "") -> str:
    return (await issue_token(user, name=name))[1]


async def create_named_token(user: User, data: Mapping[str, Any]) -> tuple[ApiToken, str]:
    """A token the user named on their settings page or through the API."""
    return await issue_token(user, name=validation.single_line(data, "name", max_len=TOKEN_NAME_MAX))


async def list_tokens(user: User) -> list[ApiToken]:
    return list(await ApiToken.filter(user_id=user.id).order_by("-created_at", "-id"))


async def revoke_token(user: User, token_id: int) -> None:
    """Someone else's token is "not found", like one that never existed: ids reveal nothing."""
    if not await ApiToken.filter(id=token_id, user_id=user.id).delete():
        raise NotFound(f"you have no token with id {token_id}")


def token_dict(row: ApiToken) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "created_at": row.created_at.isoformat(),
            "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None}


async def user_for_token(token: str) -> User | None:
    """The token's user while the account is active; a deactivated user's tokens stop working."""
    if not token.startswith("ss_") or len(token) > 100:
        return None
    row = await ApiToken.filter(token_hash=token_hash(token), user__is_active=True).select_related("user").first()
    if row is None:
        return None
    await ApiToken.filter(id=row.id).update(last_used_at=datetime.now(UTC))
    return row.user


async def get_user(user_id: int) -> User | None:
    return await User.filter(id=user_id, is_active=True).first()


async def mark_seen(user: User, *, now: datetime | None = None) -> None:
    """Records that `user` is active (`last_seen_at`), at most once per SEEN_EVERY: one UPDATE, not one per request."""
    at = now or datetime.now(UTC)
    if user.last_seen_at is not None and at - user.last_seen_at < SEEN_EVERY:
        return
    await User.filter(id=user.id).update(last_seen_at=at)
    user.last_seen_at = at


async def get_user_by_name(username: str) -> User:
    # Junk (a NUL, 300 characters) cannot name anyone: not found, without asking the database.
    user = await User.filter(username__iexact=username).first() if USERNAME_RE.match(username) else None
    if user is None:
        raise NotFound(f"no user named {username!r}")
    return user


async def set_role(username: str, role: object) -> User:
    user = await get_user_by_name(username)
    user.role = _check_role(role)
    await user.save(update_fields=["role"])
    return user


async def set_on_duty(user: User, on_duty: bool) -> None:
    user.on_duty = on_duty
    await user.save(update_fields=["on_duty"])


async def add_reputation(user_id: int | None, delta: int) -> int:
    """Reputation never drops below 1, as on Stack Overflow. Returns the change applied (a penalty can be
    smaller than asked when it reaches the floor), so that undoing it gives back exactly that."""
    if user_id is None or delta == 0:
        return 0
    # The row lock of FOR UPDATE makes `o.reputation` the value this update changes (the current
    # transaction's connection, when there is one, runs it).
    rows = await connections.get("default").execute_query_dict(
        "WITH o AS (SELECT id, reputation FROM users WHERE id = $1 FOR UPDATE) "
        "UPDATE users AS u SET reputation = greatest(1, o.reputation + $2) FROM o WHERE u.id = o.id "
        "RETURNING u.reputation - o.reputation AS applied", [user_id, delta])
    return int(rows[0]["applied"]) if rows else 0


# --- account settings ------------------------------------------------------------------------------


def verify_password(user: User, password: object, *, field: str = "current_password") -> None:
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        raise WrongPassword("the current password is wrong", field=field)
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        raise WrongPassword("the current password is wrong", field=field) from None


async def change_password(user: User, data: Mapping[str, Any], *, broker: Broker) -> User:
    """Needs the current password; ends every other session, their websockets included (the caller
    re-issues its own cookie)."""
    new = check_password(data.get("new_password"), "new_password")
    verify_password(user, data.get("current_password"))
    await set_password(user, new)
    await announce_account_change(broker, user.id)
    return user


async def set_password(user: User, password: str) -> None:
    """The one way a password changes: cookies of older generations stop working and any reset link dies."""
    async with in_transaction():
        user.password_hash = _hasher.hash(password)
        user.session_generation += 1
        await user.save(update_fields=["password_hash", "session_generation"])
        await PasswordReset.filter(user_id=user.id).delete()


async def change_email(user: User, data: Mapping[str, Any]) -> User:
    if "email" not in data:
        raise InvalidInput("email is required (null or \"\" removes it)", field="email")
    user.email = _check_email(data["email"])
    await user.save(update_fields=["email"])
    return user


def me_dict(user: User) -> dict[str, Any]:
    """The signed-in user as they see themselves: their public card and their email."""
    return user.public() | {"email": user.email}


# --- user administration ---------------------------------------------------------------------------


async def list_users(*, q: str = "", role: str = "", page: int = 1) -> tuple[list[User], int]:
    """Users whose name contains `q`, with `role`, alphabetically, USERS_PER_PAGE a page."""
    query = User.all()
    if q:
        query = query.filter(username__icontains=q)
    if role:
        query = query.filter(role=_check_role(role))
    total = await query.count()
    users = await query.order_by("username", "id").offset((page - 1) * USERS_PER_PAGE).limit(USERS_PER_PAGE)
    return list(users), total


def admin_user_dict(user: User, *, with_email: bool) -> dict[str, Any]:
    data = user.public() | {"is_active": user.is_active, "created_at": user.created_at.isoformat(),
                            "last_seen_at": user.last_seen_at.isoformat() if user.last_seen_at else None}
    return data | {"email": user.email} if with_email else data


async def get_any_user(user_id: int) -> User:
    """Any user by id, deactivated ones too (get_user only finds those who may sign in)."""
    user = await User.filter(id=user_id).first()
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    return user


async def update_user(actor: User, user_id: int, data: Mapping[str, Any], *, broker: Broker) -> User:
    """An admin changes `role` and/or `is_active`. Deactivation signs the user out everywhere (tokens are
    refused while inactive); their questions, answers and messages stay. Either way the user's open
    websockets reconnect, so the new role or status applies to them at once."""
    user = await get_any_user(user_id)
    updates: dict[str, Any] = {}
    if data.get("role") is not None:
        updates["role"] = _check_role(data["role"])
    if data.get("is_active") is not None:
        if not isinstance(data["is_active"], bool):
            raise InvalidInput("is_active must be true or false", field="is_active")
        updates["is_active"] = data["is_active"]
    if not updates:
        raise InvalidInput("nothing to change: send role and/or is_active", field="role")
    permissions.ensure(permissions.can_change_account(actor, user, role=updates.get("role", user.role),
                                                      is_active=updates.get("is_active", user.is_active)),
                       "you cannot take away your own admin role or deactivate yourself")
    if updates.get("is_active") is False and user.is_active:
        updates["session_generation"] = user.session_generation + 1  # reactivation does not revive old cookies
    await User.filter(id=user.id).update(**updates)
    await user.refresh_from_db()
    await announce_account_change(broker, user.id)
    return user
