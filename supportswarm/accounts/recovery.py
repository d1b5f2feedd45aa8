"""Password reset links: one-time, hashed, an hour long, issued by admins, the CLI, or a mail the user asks for.

A user has at most one live link: a new one replaces it, using it or any password change deletes it. The
token is 256 random bits, so its SHA-256 is all that is stored and a database leak yields no usable link.
Asking for a mail answers the same whether or not the account exists; the mail goes out from a job.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from supportswarm.accounts import mail, services
from supportswarm.accounts.live import announce_account_change
from supportswarm.accounts.models import PasswordReset, User
from supportswarm.errors import Conflict, InvalidInput
from supportswarm.jobs import JobName, JobQueue
from supportswarm.realtime.broker import Broker
from supportswarm.settings import Settings

RESET_TTL = timedelta(hours=1)
RESET_PATH = "/reset-password/"
LOCAL_URL = "http://127.0.0.1:8000"  # what `supportswarm serve` listens on by default
IDENTIFIER_MAX = 254


@dataclass(frozen=True)
class ResetLink:
    url: str
    expires_at: datetime


async def issue_link(user: User, *, base_url: str, created_by: User | None = None) -> ResetLink:
    """A fresh link for `user`, replacing any earlier one."""
    if not user.is_active:
        raise Conflict(f"{user.username} is deactivated: reactivate the account first", field="user")
    token = secrets.token_urlsafe(32)
    expires_at = datetime.now(UTC) + RESET_TTL
    async with in_transaction():
        await PasswordReset.filter(user_id=user.id).delete()
        await PasswordReset.create(user=user, token_hash=services.token_hash(token), created_by=created_by,
                                   expires_at=expires_at)
    return ResetLink(url=base_url.rstrip("/") + RESET_PATH + token, expires_at=expires_at)


async def user_for_link(token: str) -> User:
    """The user a live link belongs to; an unknown, used, replaced or expired link is a 400."""
    row = None
    if 20 <= len(token) <= 100:  # junk never reaches the database
        row = await PasswordReset.filter(token_hash=services.token_hash(token), expires_at__gt=datetime.now(UTC),
                                         user__is_active=True).select_related("user").first()
    if row is None:
        raise InvalidInput("this reset link is invalid, used or expired; ask for a new one", field="token")
    return row.user


async def reset_password(token: str, password: object, *, broker: Broker) -> User:
    """Sets the new password; the link dies with it and every session of the user ends, websockets included."""
    new = services.check_password(password)
    async with in_transaction():
        user = await user_for_link(token)
        if not await PasswordReset.filter(user_id=user.id, token_hash=services.token_hash(token)).delete():
            # a concurrent use of the same link got there first
            raise InvalidInput("this reset link is invalid, used or expired; ask for a new one", field="token")
        await services.set_password(user, new)
    await announce_account_change(broker, user.id)
    return user


# --- by mail ---------------------------------------------------------------------------------------


async def request_mail(identifier: object, *, jobs: JobQueue) -> int:
    """Queues a reset mail to each active account named `identifier` or with it as its email. The caller
    answers the same whatever this finds; the count is for tests and logs only."""
    if not isinstance(identifier, str) or not 0 < len(identifier.strip()) <= IDENTIFIER_MAX:
        raise InvalidInput("enter your username or email address", field="login")
    name = identifier.strip()
    users = await User.filter(Q(is_active=True) & Q(email__not_isnull=True)
                              & (Q(username__iexact=name) | Q(email__iexact=name))).limit(5)
    for user in users:
        await jobs.enqueue(JobName.SEND_RESET_MAIL, job_id=f"reset-mail:{user.id}", user_id=user.id)
    return len(users)


def reset_message(user: User, link: ResetLink, *, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = user.email or ""
    message["Subject"] = "Reset your SupportSwarm password"
    message.set_content(
        f"Hello {user.username},\n\n"
        "someone (we hope you) asked to reset the password of your SupportSwarm account.\n"
        f"Open this link within an hour to choose a new one:\n\n{link.url}\n\n"
        "The link works once. If you did not ask for it, ignore this mail: your password stays as it is.\n"
    )
    return message


async def send_reset_mail(user_id: int, *, settings: Settings) -> bool:
    """Job `send_reset_mail`: issues a link and mails it. The token exists only here and in the mail, never
    in the job queue. False when there is nothing to send (mail off, account gone, no address)."""
    user = await services.get_user(user_id)
    if user is None or not user.email or not settings.mail_enabled:
        return False
    link = await issue_link(user, base_url=settings.public_url or "")
    await mail.send(settings.smtp_url or "", reset_message(user, link, sender=settings.mail_from))
    return True
