"""Accounts: registration, passwords, API tokens, roles."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from supportswarm.accounts.models import ApiToken, Role, User
from supportswarm.errors import Conflict, InvalidInput, NotAuthenticated, NotFound

_hasher = PasswordHasher()
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,32}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,63}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 256


def _check_password(password: object) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD} characters", field="password")
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"password must be at most {MAX_PASSWORD} characters", field="password")
    return password


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
    secret = _check_password(password)
    checked_role = _check_role(role)
    if email is not None and email != "" and (not isinstance(email, str) or not EMAIL_RE.match(email)):
        raise InvalidInput("email is not a valid address", field="email")
    if await User.filter(username__iexact=name).exists():
        raise Conflict(f"the username {name!r} is taken", field="username")
    try:
        return await User.create(
            username=name, password_hash=_hasher.hash(secret), email=email or None, role=checked_role
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


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(user: User, *, name: str = "") -> str:
    token = "ss_" + secrets.token_urlsafe(32)
    await ApiToken.create(user=user, token_hash=_token_hash(token), name=name[:64])
    return token


async def user_for_token(token: str) -> User | None:
    if not token.startswith("ss_") or len(token) > 100:
        return None
    row = await ApiToken.filter(token_hash=_token_hash(token)).select_related("user").first()
    if row is None:
        return None
    await ApiToken.filter(id=row.id).update(last_used_at=datetime.now(UTC))
    return row.user


async def get_user(user_id: int) -> User | None:
    return await User.filter(id=user_id, is_active=True).first()


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


async def add_reputation(user_id: int | None, delta: int) -> None:
    """Reputation never drops below 1, as on Stack Overflow."""
    if user_id is None or delta == 0:
        return
    await User.filter(id=user_id).update(reputation=F("reputation") + delta)
    await User.filter(id=user_id, reputation__lt=1).update(reputation=1)
