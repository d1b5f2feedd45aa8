"""What non-staff see of a hidden post. A leaf module: forum, swarm and webhooks mask with it, and
moderation decides what is hidden; none of them needs to import the others for this."""

from __future__ import annotations

from datetime import datetime

HIDDEN_TEXT = "hidden by a moderator"


def shown(text: str, hidden_at: datetime | None, *, reveal: bool) -> str:
    """The text itself, or HIDDEN_TEXT when the post is hidden and the viewer is not staff (`reveal`)."""
    return text if hidden_at is None or reveal else HIDDEN_TEXT
