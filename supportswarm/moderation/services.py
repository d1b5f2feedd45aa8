"""Flags and the moderation queue: members flag posts, staff dismiss the flags, hide the post or restore it.

A post is a question, an answer, a comment or a swarm message. Hiding sets the post's own `hidden_at`
(nothing is deleted; revisions stay): lists and search leave hidden questions out, and pages, the API
and room transcripts show non-staff `visibility.HIDDEN_TEXT` instead of the text.

As on Discourse, enough distinct members flagging a post as spam or rude hide it at once, pending review
(`hidden_by` stays empty: nobody decided yet); a moderator then agrees (hide) or disagrees (dismiss,
which shows it again). As on Stack Overflow, the author loses REP_PENALTY when a moderator agrees with
spam or rude flags (less at the reputation floor of 1), and gets back exactly what it cost when the post
is restored: a post costs its author reputation exactly while it has agreed spam or rude flags.

Every change to a post's flags or visibility runs under a lock on the post's row, so auto-hiding, two
moderators and a late flag never interleave.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from tortoise import connections
from tortoise.transactions import in_transaction

from supportswarm.accounts import permissions
from supportswarm.accounts.models import User
from supportswarm.accounts.services import add_reputation
from supportswarm.errors import Conflict, Forbidden, InvalidInput, NotFound
from supportswarm.forum.models import Answer, Comment, Question
from supportswarm.metrics.events import EventKind, record_event
from supportswarm.moderation.models import Flag, FlagReason, FlagStatus
from supportswarm.swarm import services as swarms
from supportswarm.swarm.models import Swarm, SwarmMessage

DETAIL_MAX = 500
REP_PENALTY = 100
PENALISED = (FlagReason.SPAM, FlagReason.RUDE)  # the reasons that auto-hide and cost reputation
QUEUE_PAGE = 50


class PostKind(StrEnum):
    QUESTION = "question"
    ANSWER = "answer"
    COMMENT = "comment"
    MESSAGE = "message"


class Action(StrEnum):
    DISMISS = "dismiss"  # the flags are declined; a post hidden by flags alone is shown again
    HIDE = "hide"  # the flags are agreed; the post is hidden by this moderator
    RESTORE = "restore"  # the post is shown again; its flags are declined and any penalty refunded


MODELS: dict[PostKind, type[Question | Answer | Comment | SwarmMessage]] = {
    PostKind.QUESTION: Question, PostKind.ANSWER: Answer, PostKind.COMMENT: Comment, PostKind.MESSAGE: SwarmMessage,
}
FLAG_COLUMN = {PostKind.QUESTION: "question_id", PostKind.ANSWER: "answer_id", PostKind.COMMENT: "comment_id",
               PostKind.MESSAGE: "message_id"}


@dataclass(frozen=True)
class Post:
    kind: PostKind
    id: int
    author: User | None
    question_id: int  # the thread it belongs to: its own, its answer's, or its swarm's question
    swarm_id: int | None
    seq: int | None
    title: str | None
    body: str
    hidden_at: datetime | None
    hidden_by_id: int | None

    @property
    def author_id(self) -> int | None:
        return None if self.author is None else self.author.id

    @property
    def url(self) -> str:
        if self.kind == PostKind.MESSAGE:
            return f"/swarms/{self.swarm_id}#msg-{self.seq}"
        anchor = f"#answer-{self.id}" if self.kind == PostKind.ANSWER else ""
        return f"/questions/{self.question_id}{anchor}"


def now() -> datetime:
    return datetime.now(UTC)


# --- input ----------------------------------------------------------------------------------------


def check_flag(reason: object, detail: object) -> tuple[FlagReason, str]:
    if not isinstance(reason, str) or reason not in set(FlagReason):
        raise InvalidInput(f"reason must be one of {', '.join(FlagReason)}", field="reason")
    if detail is None:
        detail = ""
    if not isinstance(detail, str) or "\x00" in detail:
        raise InvalidInput("detail must be text without NUL characters", field="detail")
    try:
        detail.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: PostgreSQL cannot store it
        raise InvalidInput("detail is not valid Unicode text", field="detail") from None
    text = " ".join(detail.split())
    if len(text) > DETAIL_MAX:
        raise InvalidInput(f"detail must be at most {DETAIL_MAX} characters", field="detail")
    if reason == FlagReason.NEEDS_ATTENTION and not text:
        raise InvalidInput("say what needs a moderator's attention", field="detail")
    return FlagReason(reason), text


def check_action(action: object) -> Action:
    if not isinstance(action, str) or action not in set(Action):
        raise InvalidInput(f"action must be one of {', '.join(Action)}", field="action")
    return Action(action)


def check_status(status: str | None) -> FlagStatus:
    if status is None or status == "":
        return FlagStatus.PENDING
    if status not in set(FlagStatus):
        raise InvalidInput(f"status must be one of {', '.join(FlagStatus)}", field="status")
    return FlagStatus(status)


# --- posts ----------------------------------------------------------------------------------------


async def load_post(kind: PostKind, post_id: int) -> Post:
    row: Any = await MODELS[kind].filter(id=post_id).select_related("author").first()
    if row is None:
        raise NotFound(f"no {kind} with id {post_id}")
    swarm_id = seq = None
    if kind == PostKind.QUESTION:
        question_id = row.id
    elif kind == PostKind.MESSAGE:
        swarm_id, seq = row.swarm_id, row.seq
        question_id = (await Swarm.get(id=swarm_id)).question_id
    elif kind == PostKind.COMMENT and row.answer_id is not None:
        question_id = (await Answer.get(id=row.answer_id)).question_id
    else:
        question_id = row.question_id
    return Post(kind=kind, id=row.id, author=row.author, question_id=question_id, swarm_id=swarm_id, seq=seq,
                title=getattr(row, "title", None), body=row.body, hidden_at=row.hidden_at,
                hidden_by_id=row.hidden_by_id)


async def _lock(kind: PostKind, post_id: int) -> Post:
    """Inside a transaction: locks the post's row until commit, then reads it afresh."""
    await MODELS[kind].filter(id=post_id).select_for_update().values_list("id", flat=True)
    return await load_post(kind, post_id)


async def _set_hidden(post: Post, hidden_at: datetime | None, hidden_by_id: int | None) -> None:
    await MODELS[post.kind].filter(id=post.id).update(hidden_at=hidden_at, hidden_by_id=hidden_by_id)


async def _log(kind: EventKind, post: Post, actor_id: int | None, **data: Any) -> None:
    await record_event(kind, actor_id=actor_id, question_id=post.question_id,
                       answer_id=post.id if post.kind == PostKind.ANSWER else None, swarm_id=post.swarm_id,
                       post=str(post.kind), post_id=post.id, **data)


# --- flagging -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flagged:
    flag: Flag
    hidden: bool  # the post is hidden now (this flag may have been the one that hid it)


async def flag_post(user: User, kind: PostKind, post_id: int, *, reason: object, detail: object,
                    flags_to_hide: int) -> Flagged:
    """One open flag per user per post, never on one's own post; enough spam/rude flaggers hide it."""
    why, text = check_flag(reason, detail)
    post = await load_post(kind, post_id)
    if post.author_id == user.id:
        raise Forbidden("you cannot flag your own post")
    column = FLAG_COLUMN[kind]
    async with in_transaction():
        post = await _lock(kind, post_id)
        if await Flag.filter(user_id=user.id, status=FlagStatus.PENDING, **{column: post.id}).exists():
            raise Conflict("you already flagged this post; a moderator will look at it", code="already_flagged")
        target: dict[str, Any] = {column: post.id}
        flag = await Flag.create(user=user, reason=why, detail=text, **target)
        await _log(EventKind.POST_FLAGGED, post, user.id, reason=str(why))
        hidden = post.hidden_at is not None or await _auto_hide(post, flags_to_hide)
    return Flagged(flag, hidden)


async def flag_message(user: User, swarm_id: int, seq: int, *, reason: object, detail: object, flags_to_hide: int,
                       expert_reputation: int) -> Flagged:
    """Room message `seq`, flagged by someone who may see the room (a live room: its members)."""
    await swarms.ensure_can_view(await swarms.get_swarm(swarm_id), user, expert_reputation=expert_reputation)
    message = await SwarmMessage.filter(swarm_id=swarm_id, seq=seq).first()
    if message is None:
        raise NotFound(f"no message {seq} in swarm {swarm_id}")
    return await flag_post(user, PostKind.MESSAGE, message.id, reason=reason, detail=detail,
                           flags_to_hide=flags_to_hide)


async def _auto_hide(post: Post, flags_to_hide: int) -> bool:
    """Hidden pending review once `flags_to_hide` members have open spam/rude flags on it (one each)."""
    flaggers = await Flag.filter(status=FlagStatus.PENDING, reason__in=PENALISED,
                                 **{FLAG_COLUMN[post.kind]: post.id}).count()
    if flaggers < flags_to_hide:
        return False
    await _set_hidden(post, now(), None)
    await _log(EventKind.POST_HIDDEN, post, None, auto=True, flags=flaggers)
    return True


# --- the queue ------------------------------------------------------------------------------------

# One row per flagged post. Pending: the longest-waiting first; settled: the latest decisions first.
_GROUPS_SQL = """
SELECT question_id, answer_id, comment_id, message_id
FROM flags WHERE status = $1
GROUP BY question_id, answer_id, comment_id, message_id
ORDER BY {order}
LIMIT $2
"""
_ORDER = {FlagStatus.PENDING: "min(created_at), min(id)"} | {
    s: "max(resolved_at) DESC, max(id) DESC" for s in (FlagStatus.AGREED, FlagStatus.DECLINED)}


async def flag_queue(status: str | None = None) -> dict[str, Any]:
    """Posts with flags in `status` (pending by default), oldest first, each with its flags and author."""
    wanted = check_status(status)
    conn = connections.get("default")
    rows = await conn.execute_query_dict(_GROUPS_SQL.format(order=_ORDER[wanted]), [str(wanted), QUEUE_PAGE])
    total = await conn.execute_query_dict(
        "SELECT count(DISTINCT (question_id, answer_id, comment_id, message_id))::int AS n FROM flags "
        "WHERE status = $1", [str(wanted)])
    items = []
    for row in rows:
        kind = next(k for k, column in FLAG_COLUMN.items() if row[column] is not None)
        items.append(await post_group(kind, row[FLAG_COLUMN[kind]], wanted))
    return {"status": str(wanted), "items": items, "total": total[0]["n"]}


async def post_group(kind: PostKind, post_id: int, status: FlagStatus) -> dict[str, Any]:
    post = await load_post(kind, post_id)
    flags = await Flag.filter(status=status, **{FLAG_COLUMN[kind]: post_id}).order_by("created_at", "id") \
        .prefetch_related("user")
    reasons: dict[str, int] = {}
    for f in flags:
        reasons[str(f.reason)] = reasons.get(str(f.reason), 0) + 1
    return {"post": post_dict(post), "count": len(flags), "reasons": reasons, "flags": [flag_dict(f) for f in flags]}


def post_dict(post: Post) -> dict[str, Any]:
    """For staff only: the real text, whether or not the post is hidden."""
    return {
        "kind": str(post.kind), "id": post.id, "question_id": post.question_id, "swarm_id": post.swarm_id,
        "seq": post.seq, "title": post.title, "body": post.body, "url": post.url,
        "author": None if post.author is None else post.author.username,
        "hidden": post.hidden_at is not None, "hidden_at": post.hidden_at.isoformat() if post.hidden_at else None,
        "auto_hidden": post.hidden_at is not None and post.hidden_by_id is None,
    }


def flag_dict(flag: Flag) -> dict[str, Any]:
    return {"id": flag.id, "reason": str(flag.reason), "detail": flag.detail, "status": str(flag.status),
            "user": flag.user.username, "created_at": flag.created_at.isoformat()}


# --- resolving ------------------------------------------------------------------------------------


async def resolve_flag(moderator: User, flag_id: int, action: object) -> dict[str, Any]:
    """Settles every flag on the flagged post at once: the queue shows one post, not one flag."""
    permissions.ensure(permissions.can_moderate(moderator), "only staff can resolve flags")
    chosen = check_action(action)
    flag = await Flag.filter(id=flag_id).first()
    if flag is None:
        raise NotFound(f"no flag with id {flag_id}")
    kind = next(k for k, column in FLAG_COLUMN.items() if getattr(flag, column) is not None)
    post_id = int(getattr(flag, FLAG_COLUMN[kind]))
    async with in_transaction():
        post = await _lock(kind, post_id)
        settle = {"resolved_by_id": moderator.id, "resolved_at": now()}
        flags = Flag.filter(**{FLAG_COLUMN[kind]: post_id})
        if chosen == Action.DISMISS:
            await flags.filter(status=FlagStatus.PENDING).update(status=FlagStatus.DECLINED, **settle)
            if post.hidden_at is not None and post.hidden_by_id is None:  # the flags alone had hidden it
                await _set_hidden(post, None, None)
                await _log(EventKind.POST_RESTORED, post, moderator.id)
        elif chosen == Action.HIDE:
            await _hide(post, moderator, flags, settle)
        else:
            await _restore(post, moderator, flags, settle)
    return {"action": str(chosen)} | await post_group(kind, post_id, FlagStatus.PENDING)


async def _hide(post: Post, moderator: User, flags: Any, settle: dict[str, Any]) -> None:
    penalised_before = await flags.filter(status=FlagStatus.AGREED, reason__in=PENALISED).exists()
    penalise = not penalised_before and await flags.filter(status=FlagStatus.PENDING, reason__in=PENALISED).exists()
    await flags.filter(status=FlagStatus.PENDING).update(status=FlagStatus.AGREED, **settle)
    await _set_hidden(post, post.hidden_at or settle["resolved_at"], moderator.id)
    penalty = -await add_reputation(post.author_id, -REP_PENALTY) if penalise else 0
    await _log(EventKind.POST_HIDDEN, post, moderator.id, auto=False, penalty=penalty)


async def _restore(post: Post, moderator: User, flags: Any, settle: dict[str, Any]) -> None:
    if post.hidden_at is None:
        raise Conflict("this post is not hidden")
    penalised = await flags.filter(status=FlagStatus.AGREED, reason__in=PENALISED).exists()
    refund = await _penalty_taken(post) if penalised else 0
    await flags.filter(status__in=[FlagStatus.PENDING, FlagStatus.AGREED]).update(status=FlagStatus.DECLINED,
                                                                                   **settle)
    await _set_hidden(post, None, None)
    await add_reputation(post.author_id, refund)
    await _log(EventKind.POST_RESTORED, post, moderator.id, refund=refund)


async def _penalty_taken(post: Post) -> int:
    """What hiding this post actually cost its author (less than REP_PENALTY at the reputation floor)."""
    rows = await connections.get("default").execute_query_dict(
        "SELECT (data->>'penalty')::int AS penalty FROM events WHERE kind = $1 AND data->>'post' = $2 "
        "AND data->>'post_id' = $3 ORDER BY id DESC LIMIT 1",
        [EventKind.POST_HIDDEN.value, str(post.kind), str(post.id)])
    return int(rows[0]["penalty"] or 0) if rows else 0
