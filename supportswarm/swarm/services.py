"""Swarm rooms: open, join, talk, resolve. PostgreSQL holds the truth; the broker only notifies.

Every room message gets its per-room `seq` in the transaction that stores it, under a row lock on the
swarm (`UPDATE swarms SET last_seq = last_seq + 1 ... RETURNING`), so commit order is seq order and
the message table is the backlog: resume never runs out of history (STYLE.md C5.1). Notifications are
published after commit; if that fails a REPUBLISH job retries it, and clients de-duplicate by `seq`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from supportswarm import telemetry
from supportswarm.accounts import permissions
from supportswarm.accounts.models import User
from supportswarm.accounts.services import add_reputation
from supportswarm.errors import Conflict, Forbidden, InvalidInput, NotFound, RoomClosed, SwarmError
from supportswarm.forum import services as forum
from supportswarm.forum.models import Answer, Question, QuestionStatus
from supportswarm.jobs import JobName, JobQueue
from supportswarm.metrics.events import EventKind, record_event
from supportswarm.metrics.models import Event
from supportswarm.moderation.visibility import shown
from supportswarm.realtime.broker import Broker, BrokerUnavailable
from supportswarm.realtime.protocol import INBOX_CHANNEL, Envelope, EventType, swarm_channel, user_channel
from supportswarm.swarm.models import Swarm, SwarmLink, SwarmMessage, SwarmParticipant, SwarmStatus
from supportswarm.swarm.store import Say, Stored, batcher

log = logging.getLogger(__name__)

MESSAGE_MAX = 4000
BACKLOG_PAGE = 200
CLIENT_MSG_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
REP_SWARM_HELPER = 5  # every helper who spoke in a resolved swarm; the solution's author also gets REP_ACCEPTED
INBOX_EVENT = "inbox"  # {"type": "inbox", "op": "opened" | "updated" | "resolved", "swarm_id"}
INVITATION_EVENT = "invitation"  # {"type": "invitation", "swarm": {...}, "score"}


def now() -> datetime:
    return datetime.now(UTC)


# --- shapes sent to clients --------------------------------------------------------------------------


def author_dict(user: User | None) -> dict[str, Any] | None:
    return None if user is None else {"id": user.id, "username": user.username, "role": str(user.role)}


def message_frame(m: SwarmMessage, author: User | None) -> dict[str, Any]:
    """The `message` event: also the broker envelope's data, the REST transcript item and the backlog item.
    A message hidden by a moderator reads HIDDEN_TEXT here for everyone; staff read it in /admin/flags."""
    return _message_frame(m.id, m.seq, m.client_msg_id, author, shown(m.body, m.hidden_at, reveal=False),
                          m.created_at)


def _message_frame(id: int, seq: int, client_msg_id: str, author: User | None, body: str, at: datetime
                   ) -> dict[str, Any]:
    return {"type": EventType.MESSAGE.value, "id": id, "seq": seq, "client_msg_id": client_msg_id,
            "author": author_dict(author), "body": body, "at": at.isoformat()}


def swarm_dict(swarm: Swarm, question: Question) -> dict[str, Any]:
    return {
        "id": swarm.id, "question_id": question.id, "status": str(swarm.status), "reason": swarm.reason,
        "opened_at": swarm.opened_at.isoformat(),
        "resolved_at": swarm.resolved_at.isoformat() if swarm.resolved_at else None,
        "last_seq": swarm.last_seq, "solution_answer_id": swarm.solution_answer_id,
        "question": {"id": question.id, "title": question.title, "status": str(question.status),
                     "asker_id": question.author_id},
    }


# --- lookups -----------------------------------------------------------------------------------------


async def get_swarm(swarm_id: int) -> Swarm:
    swarm = await Swarm.filter(id=swarm_id).select_related("question").first()
    if swarm is None:
        raise NotFound(f"no swarm with id {swarm_id}")
    return swarm


async def swarm_for_question(question_id: int) -> Swarm | None:
    """The question's swarm: its own, or the (incident) swarm it was linked into."""
    own = await Swarm.filter(question_id=question_id).first()
    if own is not None:
        return own
    link = await SwarmLink.filter(question_id=question_id).select_related("swarm").first()
    return link.swarm if link else None


async def _asker_ids(swarm: Swarm) -> set[int]:
    """The askers of the swarm's question and of every question linked into it."""
    ids = {swarm.question.author_id}
    linked: list[Any] = list(await Question.filter(links_in_swarm__swarm_id=swarm.id)
                             .values_list("author_id", flat=True))
    ids |= set(linked)
    return {i for i in ids if i is not None}


async def ensure_can_join(swarm: Swarm, user: User, *, expert_reputation: int) -> None:
    """Askers (own or linked question), staff, experts and high-reputation customers may join."""
    if permissions.can_join_swarm(user, None, expert_reputation=expert_reputation):
        return
    permissions.ensure(user.id in await _asker_ids(swarm), "only the asker and helpers may join this swarm")


async def ensure_can_view(swarm: Swarm, user: User | None, *, expert_reputation: int) -> None:
    """A resolved swarm's transcript is public knowledge (DESIGN: persistence, transparency); a live one
    is visible to whoever may join it."""
    if swarm.status == SwarmStatus.RESOLVED:
        return
    await ensure_can_join(swarm, permissions.require_user(user), expert_reputation=expert_reputation)


# --- notifications (after commit) ---------------------------------------------------------------------


async def notify(broker: Broker, envelope: Envelope) -> bool:
    """Publish a notification; False (logged) when the broker is down: the data is in the database."""
    try:
        await broker.publish(envelope)
    except BrokerUnavailable as exc:
        log.warning("could not publish %s on %s: %s", envelope.type, envelope.channel, exc)
        return False
    return True


async def notify_inbox(broker: Broker, swarm_id: int, op: str) -> None:
    await notify(broker, Envelope(channel=INBOX_CHANNEL, type=INBOX_EVENT, op=op,
                                  data={"type": INBOX_EVENT, "op": op, "swarm_id": swarm_id}))


async def notify_invitation(broker: Broker, user_id: int, swarm: dict[str, Any], score: float) -> None:
    data = {"type": INVITATION_EVENT, "swarm": swarm, "score": round(score, 3)}
    await notify(broker, Envelope(channel=user_channel(user_id), type=INVITATION_EVENT, op="add", data=data))


# --- opening -----------------------------------------------------------------------------------------


async def open_swarm(question_id: int, *, opened_by: User | None, reason: str, broker: Broker,
                     jobs: JobQueue) -> Swarm:
    """Open the question's swarm, or return the one it already has (own or linked): idempotent.

    Sets the question to "swarming" (unless it is resolved), logs SWARM_OPENED, queues INVITE_HELPERS
    and tells every inbox. `reason`: "manual", "no_match", "urgent", "sla", "incident", ...
    """
    question = await forum.get_question(question_id)
    if question.status == QuestionStatus.DUPLICATE:
        raise Conflict("this question is closed as a duplicate; swarm on the original instead")
    existing = await swarm_for_question(question_id)
    if existing is not None:
        return existing
    async with in_transaction() as conn:
        # ON CONFLICT: two concurrent openers (a click and the router) make one swarm.
        rows = await conn.execute_query_dict(
            "INSERT INTO swarms (question_id, reason, opened_by_id) VALUES ($1, $2, $3) "
            "ON CONFLICT (question_id) DO NOTHING RETURNING id",
            [question_id, reason[:32], opened_by.id if opened_by else None],
        )
        if rows:
            await Question.filter(id=question_id, status=QuestionStatus.OPEN).update(status=QuestionStatus.SWARMING)
            await record_event(EventKind.SWARM_OPENED, actor_id=opened_by.id if opened_by else None,
                               question_id=question_id, swarm_id=rows[0]["id"], reason=reason)
    swarm = await Swarm.get(question_id=question_id)
    if rows:
        await jobs.enqueue(JobName.INVITE_HELPERS, job_id=f"invite:{swarm.id}", swarm_id=swarm.id)
        await notify_inbox(broker, swarm.id, "opened")
    return swarm


async def link_questions_to_swarm(swarm_id: int, question_ids: list[int], *, broker: Broker) -> list[int]:
    """Gather more questions into a swarm (incident swarms). Returns the ids newly linked.

    A question already in a swarm (its own or linked) is skipped. Linked questions become "swarming",
    their askers may join the room, and on resolve each gets the solution as its accepted answer.
    """
    swarm = await get_swarm(swarm_id)
    if swarm.status != SwarmStatus.OPEN:
        raise RoomClosed("this swarm is resolved")
    linked: list[int] = []
    async with in_transaction() as conn:
        for qid in dict.fromkeys(question_ids):
            if qid == swarm.question.id or await Swarm.filter(question_id=qid).exists():
                continue
            rows = await conn.execute_query_dict(
                "INSERT INTO swarm_links (question_id, swarm_id) SELECT id, $2 FROM questions "
                "WHERE id = $1 AND status <> 'duplicate' ON CONFLICT (question_id) DO NOTHING RETURNING question_id",
                [qid, swarm.id],
            )
            if rows:
                linked.append(qid)
        await Question.filter(id__in=linked, status=QuestionStatus.OPEN).update(status=QuestionStatus.SWARMING)
    if linked:
        await notify_inbox(broker, swarm.id, "updated")
    return linked


# --- members -----------------------------------------------------------------------------------------


async def join_swarm(swarm: Swarm, user: User, *, expert_reputation: int) -> bool:
    """Record that `user` is in the room. True (and SWARM_JOINED logged) on a first join or a rejoin
    after `leave`; reconnects are not joins."""
    await ensure_can_join(swarm, user, expert_reputation=expert_reputation)
    at = now()
    async with in_transaction():
        part = await SwarmParticipant.filter(swarm_id=swarm.id, user_id=user.id).select_for_update().first()
        if part is not None and part.joined_at is not None and part.left_at is None:
            return False
        if part is None:
            try:
                async with in_transaction():  # a savepoint: a concurrent first join must not abort the outer one
                    await SwarmParticipant.create(swarm_id=swarm.id, user_id=user.id, joined_at=at)
            except IntegrityError:
                return False
        else:
            await SwarmParticipant.filter(id=part.id).update(joined_at=part.joined_at or at, left_at=None)
        await record_event(EventKind.SWARM_JOINED, actor_id=user.id, question_id=swarm.question.id,
                           swarm_id=swarm.id, at=at, invited=part is not None and part.invited_at is not None,
                           rejoin=part is not None and part.joined_at is not None)
    return True


async def leave_swarm(swarm: Swarm, user: User) -> bool:
    """An explicit `leave`: the member is no longer listed. True if they were in."""
    at = now()
    async with in_transaction():
        count = await SwarmParticipant.filter(swarm_id=swarm.id, user_id=user.id, joined_at__isnull=False,
                                              left_at__isnull=True).update(left_at=at)
        if count:
            await record_event(EventKind.SWARM_LEFT, actor_id=user.id, question_id=swarm.question.id,
                               swarm_id=swarm.id, at=at)
    return bool(count)


def presence_member(user_id: int, connection_key: str) -> str:
    """Presence is kept per connection (two tabs, two replicas) and reported per user."""
    return f"{user_id}:{connection_key}"


def online_user_ids(members: list[str]) -> set[int]:
    ids = set()
    for member in members:
        head = member.split(":", 1)[0]
        if head.isdigit():
            ids.add(int(head))
    return ids


async def room_members(swarm_id: int, online: set[int]) -> list[dict[str, Any]]:
    """Joined members (not left), online first, each with `status` "online" or "offline"."""
    parts = await SwarmParticipant.filter(swarm_id=swarm_id, joined_at__isnull=False, left_at__isnull=True) \
        .select_related("user").order_by("joined_at")
    members = [author_dict(p.user) | {"status": "online" if p.user.id in online else "offline",  # type: ignore[operator]
                                      "messages": p.messages} for p in parts]
    return sorted(members, key=lambda m: m["status"] != "online")


async def presence_frame(swarm_id: int, broker: Broker) -> tuple[dict[str, Any], set[int]]:
    online = online_user_ids(await broker.presence(swarm_channel(swarm_id)))
    return {"type": EventType.PRESENCE.value, "members": await room_members(swarm_id, online)}, online


# --- messages ----------------------------------------------------------------------------------------


def check_message(body: object, client_msg_id: object) -> tuple[str, str]:
    if not isinstance(client_msg_id, str) or not CLIENT_MSG_ID.match(client_msg_id):
        raise InvalidInput("client_msg_id must be 1-64 characters of A-Z a-z 0-9 _ . : -", field="client_msg_id")
    if not isinstance(body, str) or "\x00" in body:
        raise InvalidInput("body must be a string without NUL characters", field="body")
    try:
        body.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in JSON): PostgreSQL cannot store it
        raise InvalidInput("body is not valid Unicode text", field="body") from None
    text = body.strip()
    if not text:
        raise InvalidInput("body must not be empty", field="body")
    if len(text) > MESSAGE_MAX:
        raise InvalidInput(f"body must be at most {MESSAGE_MAX} characters", field="body")
    return text, client_msg_id


@dataclass(frozen=True)
class Posted:
    frame: dict[str, Any]
    created: bool  # False: a retried `say`, answered with the stored message
    envelope: Envelope | None = None  # the published notification (created only)

    def encoded(self) -> dict[str, Any] | str:
        """The frame for the sender's echo: the envelope's JSON text, encoded once for the room."""
        return self.frame if self.envelope is None else self.envelope.data_json()


def new_say(swarm_id: int, user: User, body: object, client_msg_id: object) -> Say:
    """A room message to post, checked (InvalidInput otherwise) and timed now."""
    text, cmid = check_message(body, client_msg_id)
    return Say(swarm_id, user.id, text, cmid, now())


async def post_message(swarm_id: int, user: User, body: object, client_msg_id: object, *, broker: Broker,
                       jobs: JobQueue, first_response: bool = True) -> Posted:
    """Store a room message with the next `seq`, then publish it. Idempotent per `client_msg_id`."""
    [posted] = await post_says([new_say(swarm_id, user, body, client_msg_id)], user, broker=broker, jobs=jobs,
                               first_response=first_response)
    if isinstance(posted, SwarmError):
        raise posted
    return posted


async def post_says(says: list[Say], user: User, *, broker: Broker, jobs: JobQueue,
                    first_response: bool = True) -> list[Posted | SwarmError]:
    """Store `user`'s `says` (new_say) in one room with the next seqs, in order, then publish each new one.
    Per say: its Posted, or the SwarmError that refused it (the room is closed, say). Idempotent per
    `client_msg_id`; other failures (the database is down) raise.

    `first_response=False` skips checking whether the first say is the question's first response, for a
    caller who knows it cannot be: a room session once this user's message is stored (it was the first
    response, or one came before it, or the user is the asker, whose messages never count). Only the first
    say is checked: once it is stored, or found stored already, none after it can be the first response.
    """
    rows = await batcher(broker).store(says)  # grouped with the process's concurrent says (store.py)
    posted: list[Posted | SwarmError] = []
    for say, row in zip(says, rows, strict=True):
        try:
            posted.append(await _posted(say, row, user, broker=broker, jobs=jobs))
        except SwarmError as exc:
            posted.append(exc)
    if first_response and isinstance(rows[0], dict) and rows[0]["id"] is not None:
        # After the commit and the publish, not in the statement: it holds the room's row lock, and the
        # says of the process's next statements would wait on these round trips.
        await forum.record_response(rows[0]["question_id"], user, says[0].at)
    return posted


async def _posted(say: Say, row: Stored, user: User, *, broker: Broker, jobs: JobQueue) -> Posted:
    if isinstance(row, IntegrityError):  # a concurrent retry of the same client_msg_id stored it first
        if (stored := await _stored_message(say.swarm_id, say.client_msg_id)) is None:
            raise row
        return Posted(stored, False)
    if isinstance(row, Exception):
        raise row
    if row["stored"]:
        stored = await _stored_message(say.swarm_id, say.client_msg_id)
        assert stored is not None, "messages are deleted only with their swarm"
        return Posted(stored, False)
    if row["id"] is None:
        await _raise_not_open(say.swarm_id)
    telemetry.MESSAGES.inc()
    frame = _message_frame(row["id"], row["seq"], say.client_msg_id, user, say.body, say.at)  # new: not hidden
    envelope = Envelope(channel=swarm_channel(say.swarm_id), type=EventType.MESSAGE.value, op="add", data=frame,
                        seq=row["seq"])
    if not await notify(broker, envelope):
        await jobs.enqueue(JobName.REPUBLISH, job_id=f"republish:{row['id']}", message_id=row["id"])
    return Posted(frame, True, envelope)


async def _stored_message(swarm_id: int, client_msg_id: str) -> dict[str, Any] | None:
    m = await SwarmMessage.filter(swarm_id=swarm_id, client_msg_id=client_msg_id).select_related("author").first()
    return None if m is None else message_frame(m, m.author)


async def _raise_not_open(swarm_id: int) -> None:
    if await Swarm.filter(id=swarm_id).exists():
        raise RoomClosed("this swarm is resolved; the room is read-only")
    raise NotFound(f"no swarm with id {swarm_id}")


async def messages_after(swarm_id: int, after_seq: int, *, upto: int | None = None,
                         limit: int = BACKLOG_PAGE) -> list[dict[str, Any]]:
    """One page of the transcript: messages with after_seq < seq (<= upto), in seq order."""
    query = SwarmMessage.filter(swarm_id=swarm_id, seq__gt=after_seq)
    if upto is not None:
        query = query.filter(seq__lte=upto)
    rows = await query.order_by("seq").limit(limit).select_related("author")
    return [message_frame(m, m.author) for m in rows]


async def republish_message(message_id: int, *, broker: Broker) -> bool:
    """The REPUBLISH job: publish a stored message again (clients de-duplicate by seq)."""
    m = await SwarmMessage.filter(id=message_id).select_related("author").first()
    if m is None:
        return False
    envelope = Envelope(channel=swarm_channel(m.swarm_id), type=EventType.MESSAGE.value, op="add",
                        data=message_frame(m, m.author), seq=m.seq)
    await broker.publish(envelope)  # BrokerUnavailable propagates: the job fails and arq retries it
    return True


async def publish_message_update(swarm_id: int, seq: int, *, broker: Broker) -> None:
    """Tell the room how message `seq` reads now (after a moderator hid or restored it): open rooms show
    the change without a reload. A hint: a member who misses it reads the same from the database later."""
    m = await SwarmMessage.filter(swarm_id=swarm_id, seq=seq).select_related("author").first()
    if m is not None:
        data = message_frame(m, m.author) | {"type": EventType.MESSAGE_UPDATE.value}
        await notify(broker, Envelope(channel=swarm_channel(swarm_id), type=EventType.MESSAGE_UPDATE.value,
                                      op="update", data=data))


async def publish_typing(swarm_id: int, user: User, *, broker: Broker) -> None:
    """Ephemeral: published only, never stored; receivers expire it after ~10 s."""
    data = {"type": EventType.TYPING.value, "user": author_dict(user)}
    await notify(broker, Envelope(channel=swarm_channel(swarm_id), type=EventType.TYPING.value, op="start",
                                  data=data))


async def publish_presence(swarm_id: int, *, broker: Broker) -> None:
    frame, _online = await presence_frame(swarm_id, broker)
    await notify(broker, Envelope(channel=swarm_channel(swarm_id), type=EventType.PRESENCE.value, op="update",
                                  data=frame))


# --- resolving ---------------------------------------------------------------------------------------


async def ensure_can_mark_solution(swarm: Swarm, user: User, *, expert_reputation: int) -> None:
    """The asker (of the swarm's or a linked question), staff, or a helper who joined the room."""
    if permissions.is_staff(user):
        return
    askers = await _asker_ids(swarm)
    if user.id in askers:
        return
    permissions.ensure(swarm.question.author_id is not None,
                       "only staff can resolve a swarm on a question without an asker")
    joined = await SwarmParticipant.filter(swarm_id=swarm.id, user_id=user.id, joined_at__isnull=False).exists()
    permissions.ensure(joined and permissions.is_helper(user, expert_reputation=expert_reputation),
                       "only the asker, staff or a helper in the room can mark the solution")


async def resolve_swarm(swarm_id: int, user: User, seq: object, *, body: object = None, broker: Broker,
                        expert_reputation: int, jobs: JobQueue | None = None) -> Answer:
    """Mark message `seq` (optionally edited to `body`) as the solution.

    It becomes the question's accepted answer (author: the message's author; `from_swarm` set, so the
    question page links the transcript), and the same for every linked question; the swarm and the
    question are resolved, helpers who spoke get reputation, SWARM_RESOLVED is logged, and the room
    gets `resolved{answer_id}`. Reuses forum.post_answer and forum.accept_answer.
    """
    swarm = await get_swarm(swarm_id)
    if swarm.status != SwarmStatus.OPEN:
        raise RoomClosed("this swarm is already resolved")
    await ensure_can_mark_solution(swarm, user, expert_reputation=expert_reputation)
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise InvalidInput("seq must be a positive integer", field="seq")
    message = await SwarmMessage.filter(swarm_id=swarm.id, seq=seq).select_related("author").first()
    if message is None:
        raise NotFound(f"no message {seq} in this swarm")
    if message.hidden_at is not None:  # a moderator hid it: it must not come back as the accepted answer
        raise Conflict("that message was hidden by a moderator and cannot be the solution")
    text = message.body if body is None or body == "" else body
    at = now()
    async with in_transaction() as conn:
        claimed = await conn.execute_query_dict(
            "UPDATE swarms SET status = 'resolved', resolved_at = $2 WHERE id = $1 AND status = 'open' RETURNING id",
            [swarm.id, at])
        if not claimed:
            raise RoomClosed("this swarm is already resolved")
        author = message.author or user
        answer = await _post_solution(user, author, swarm.question.id, text, swarm.id)
        await Swarm.filter(id=swarm.id).update(solution_answer_id=answer.id)
        linked = await _post_to_linked(user, author, swarm, text)
        credited = await _credit_helpers(swarm, exclude=await _asker_ids(swarm) | {author.id})
        await record_event(EventKind.SWARM_RESOLVED, actor_id=user.id, question_id=swarm.question.id,
                           answer_id=answer.id, swarm_id=swarm.id, at=at, seq=seq, edited=text != message.body,
                           messages=swarm.last_seq, helpers_credited=credited, linked_questions=linked,
                           duration_s=round((at - swarm.opened_at).total_seconds(), 3))
    resolved = {"type": EventType.RESOLVED.value, "answer_id": answer.id, "seq": seq,
                "question_id": swarm.question.id}
    await notify(broker, Envelope(channel=swarm_channel(swarm.id), type=EventType.RESOLVED.value, op="update",
                                  data=resolved))
    await notify_inbox(broker, swarm.id, "resolved")
    if jobs is not None:  # what they just solved is new evidence of what these helpers know
        await jobs.enqueue(JobName.UPDATE_EXPERTISE, job_id=f"expertise:swarm:{swarm.id}",
                           user_ids=sorted({author.id, *credited}))
    return answer


async def _post_solution(marker: User, author: User, question_id: int, text: object, swarm_id: int) -> Answer:
    answer = await forum.post_answer(author, question_id, text, from_swarm_id=swarm_id)
    asker_id = (await Question.get(id=question_id)).author_id
    if permissions.can_accept(marker, asker_id):
        acting: User | None = marker
    else:  # a helper marked it: the room's rules allowed that, so accept in the asker's name
        acting = await User.filter(id=asker_id).first() if asker_id else None
    if acting is not None:
        await forum.accept_answer(acting, answer.id)
    return answer


async def _post_to_linked(marker: User, author: User, swarm: Swarm, text: object) -> list[int]:
    done = []
    for qid in await SwarmLink.filter(swarm_id=swarm.id).order_by("question_id").values_list("question_id", flat=True):
        try:
            async with in_transaction():  # a savepoint: one closed linked question must not undo the others
                await _post_solution(marker, author, int(qid), text, swarm.id)  # type: ignore[call-overload]
            done.append(int(qid))  # type: ignore[call-overload]
        except (Conflict, Forbidden, InvalidInput) as exc:
            log.info("swarm %s: solution not posted to linked question %s: %s", swarm.id, qid, exc.detail)
    return done


async def _credit_helpers(swarm: Swarm, *, exclude: set[int]) -> list[int]:
    helpers: list[Any] = list(await SwarmParticipant.filter(swarm_id=swarm.id, messages__gt=0)
                              .values_list("user_id", flat=True))
    credited = sorted(int(u) for u in helpers if int(u) not in exclude)
    for user_id in credited:
        await add_reputation(user_id, REP_SWARM_HELPER)
    return credited


# --- reading -----------------------------------------------------------------------------------------


async def safe_presence_frame(swarm_id: int, broker: Broker) -> dict[str, Any]:
    """Members with presence; when the broker is down everyone shows as offline."""
    try:
        frame, _online = await presence_frame(swarm_id, broker)
    except BrokerUnavailable:
        frame = {"type": EventType.PRESENCE.value, "members": await room_members(swarm_id, set())}
    return frame


async def swarm_view(swarm_id: int, viewer: User | None, *, after: int = 0, limit: int = BACKLOG_PAGE,
                     broker: Broker, expert_reputation: int) -> dict[str, Any]:
    """`GET /api/v1/swarms/{id}`: the swarm, its members with presence, one page of the transcript."""
    swarm = await get_swarm(swarm_id)
    await ensure_can_view(swarm, viewer, expert_reputation=expert_reputation)
    messages = await messages_after(swarm.id, after, limit=limit)
    linked = await SwarmLink.filter(swarm_id=swarm.id).order_by("question_id").values_list("question_id", flat=True)
    return {
        "swarm": swarm_dict(swarm, swarm.question) | {"linked_question_ids": list(linked)},
        "members": (await safe_presence_frame(swarm.id, broker))["members"],
        "messages": messages,
        "next_after": messages[-1]["seq"] if len(messages) == limit else None,
        "solution_seq": await _solution_seq(swarm),
        "can_join": viewer is not None and await _can(ensure_can_join(swarm, viewer,
                                                                      expert_reputation=expert_reputation)),
    }


async def _solution_seq(swarm: Swarm) -> int | None:
    if swarm.status != SwarmStatus.RESOLVED:
        return None
    event = await Event.filter(kind=EventKind.SWARM_RESOLVED, swarm_id=swarm.id).order_by("-id").first()
    seq = event.data.get("seq") if event is not None and isinstance(event.data, dict) else None
    return seq if isinstance(seq, int) else None


async def _can(check: Any) -> bool:
    try:
        await check
    except Forbidden:
        return False
    return True


# --- opening by hand and by the clock ------------------------------------------------------------------


async def start_swarm(question_id: int, user: User, *, broker: Broker, jobs: JobQueue,
                      expert_reputation: int) -> tuple[Swarm, bool]:
    """The button and `POST /api/v1/questions/{id}/swarm`: the asker or a helper opens (or gets) the swarm."""
    question = await forum.get_question(question_id)
    permissions.ensure(permissions.can_join_swarm(user, question.author_id,
                                                  expert_reputation=expert_reputation),
                       "only the asker and helpers can start a swarm")
    existing = await swarm_for_question(question_id)
    if existing is not None:
        return existing, False
    return await open_swarm(question_id, opened_by=user, reason="manual", broker=broker, jobs=jobs), True


async def watch_sla(*, sla_minutes: int, broker: Broker, jobs: JobQueue) -> dict[str, list[int]]:
    """The SLA_WATCH job (every minute): a swarm for each question unanswered past the SLA, and a wider
    round of invitations for swarms past the SLA that no helper has joined."""
    opened = []
    for qid in await overdue_questions(sla_minutes=sla_minutes):
        opened.append((await open_swarm(qid, opened_by=None, reason="sla", broker=broker, jobs=jobs)).id)
    nudged = await unattended_swarms(sla_minutes=sla_minutes)
    for swarm_id in nudged:
        await jobs.enqueue(JobName.INVITE_HELPERS, job_id=f"invite:{swarm_id}:sla", swarm_id=swarm_id, rounds=2)
    return {"opened": opened, "nudged": nudged}


async def overdue_questions(*, sla_minutes: int, limit: int = 100) -> list[int]:
    """Open questions without answers or a swarm, older than the SLA."""
    cutoff = datetime.now(UTC) - timedelta(minutes=sla_minutes)
    rows = await connections.get("default").execute_query_dict(
        "SELECT q.id FROM questions q WHERE q.status = 'open' AND q.answer_count = 0 AND q.created_at < $1 "
        "AND NOT EXISTS (SELECT 1 FROM swarms s WHERE s.question_id = q.id) "
        "AND NOT EXISTS (SELECT 1 FROM swarm_links l WHERE l.question_id = q.id) ORDER BY q.created_at LIMIT $2",
        [cutoff, limit])
    return [r["id"] for r in rows]


async def unattended_swarms(*, sla_minutes: int, limit: int = 100) -> list[int]:
    """Open swarms older than the SLA that no helper has joined yet (only the asker, or nobody)."""
    cutoff = datetime.now(UTC) - timedelta(minutes=sla_minutes)
    rows = await connections.get("default").execute_query_dict(
        "SELECT s.id FROM swarms s JOIN questions q ON q.id = s.question_id "
        "WHERE s.status = 'open' AND s.opened_at < $1 AND NOT EXISTS (SELECT 1 FROM swarm_participants p "
        "WHERE p.swarm_id = s.id AND p.joined_at IS NOT NULL AND p.user_id IS DISTINCT FROM q.author_id) "
        "ORDER BY s.opened_at LIMIT $2", [cutoff, limit])
    return [r["id"] for r in rows]
