"""Account jobs: the password-reset mail."""

from __future__ import annotations

from typing import Any

from supportswarm.accounts import recovery
from supportswarm.jobs import JobFunction, JobName
from supportswarm.resources import Resources


async def send_reset_mail(ctx: dict[str, Any], user_id: int) -> bool:
    """Job id `reset-mail:{user_id}`: issues a reset link and mails it (a retry sends a newer link; the
    mail's link is always the live one). An SMTP failure fails the job: the user asks again."""
    res: Resources = ctx["resources"]
    return await recovery.send_reset_mail(user_id, settings=res.settings)


FUNCTIONS: dict[str, JobFunction] = {JobName.SEND_RESET_MAIL: send_reset_mail}
