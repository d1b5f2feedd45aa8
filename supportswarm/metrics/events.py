"""Writing to the event log. Every domain records what happened here; metrics only read."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from supportswarm.metrics.models import Event


class EventKind(StrEnum):
    QUESTION_ASKED = "question_asked"
    SUGGESTION_SHOWN = "suggestion_shown"
    SUGGESTION_ACCEPTED = "suggestion_accepted"
    SUGGESTION_REJECTED = "suggestion_rejected"
    FIRST_RESPONSE = "first_response"
    ANSWER_POSTED = "answer_posted"
    COMMENT_POSTED = "comment_posted"
    ANSWER_ACCEPTED = "answer_accepted"
    ANSWER_REUSED = "answer_reused"
    DUPLICATE_LINKED = "duplicate_linked"
    SWARM_OPENED = "swarm_opened"
    SWARM_JOINED = "swarm_joined"
    SWARM_LEFT = "swarm_left"
    SWARM_MESSAGE = "swarm_message"
    SWARM_RESOLVED = "swarm_resolved"
    QUESTION_RESOLVED = "question_resolved"
    POST_FLAGGED = "post_flagged"
    POST_HIDDEN = "post_hidden"
    POST_RESTORED = "post_restored"


async def record_event(
    kind: EventKind,
    *,
    actor_id: int | None = None,
    question_id: int | None = None,
    answer_id: int | None = None,
    swarm_id: int | None = None,
    at: datetime | None = None,
    **data: Any,
) -> Event:
    return await Event.create(
        kind=str(kind),
        at=at or datetime.now(UTC),
        actor_id=actor_id,
        question_id=question_id,
        answer_id=answer_id,
        swarm_id=swarm_id,
        data=data,
    )
