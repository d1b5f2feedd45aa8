"""Swarm services against real PostgreSQL: opening, seq assignment, idempotent sends, resolving, invitations."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from supportswarm.accounts.models import User
from supportswarm.errors import Forbidden, InvalidInput, NotFound, RoomClosed
from supportswarm.forum import services as forum
from supportswarm.forum.models import Answer, Question, QuestionStatus
from supportswarm.jobs import JobName
from supportswarm.metrics.models import Event
from supportswarm.realtime.broker import BrokerUnavailable
from supportswarm.realtime.memory import MemoryBroker
from supportswarm.realtime.protocol import INBOX_CHANNEL, Envelope, swarm_channel, user_channel
from supportswarm.resources import Resources
from supportswarm.swarm import expertise, services
from supportswarm.swarm.models import Swarm, SwarmMessage, SwarmParticipant, SwarmStatus
from tests.swarm.helpers import member, question

EXPERT_REP = 200


class RecordingJobs:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, dict[str, Any]]] = []

    async def enqueue(self, name: JobName, *, job_id: str | None = None, **kwargs: Any) -> None:
        self.calls.append((str(name), job_id, kwargs))

    async def drain(self) -> None:
        return None

    async def close(self) -> None:
        return None


class DownBroker(MemoryBroker):
    async def publish(self, envelope: Envelope) -> None:
        raise BrokerUnavailable("down for the test")


@pytest.fixture
def res(resources: Resources) -> Resources:
    return resources


async def open_for(res: Resources, q: Question, by: User | None = None) -> Swarm:
    return await services.open_swarm(q.id, opened_by=by, reason="manual", broker=res.broker, jobs=res.jobs)


async def say(res: Resources, swarm: Swarm, user: User, body: str, cmid: str) -> services.Posted:
    return await services.post_message(swarm.id, user, body, cmid, broker=res.broker, jobs=res.jobs)


class TestOpenSwarm:
    async def test_is_idempotent_and_marks_the_question_swarming(self, res: Resources) -> None:
        asker = await member("asker")
        q = await question(asker)
        inbox = await res.broker.subscribe([INBOX_CHANNEL])
        first = await open_for(res, q, asker)
        again = await open_for(res, q)
        assert first.id == again.id
        assert (await Question.get(id=q.id)).status == QuestionStatus.SWARMING
        assert await Event.filter(kind="swarm_opened", swarm_id=first.id).count() == 1
        async with asyncio.timeout(2):
            hint = await anext(aiter(inbox))
        assert hint.data == {"type": "inbox", "op": "opened", "swarm_id": first.id}
        await inbox.close()

    async def test_concurrent_openers_make_one_swarm(self, res: Resources) -> None:
        q = await question(await member("asker"))
        swarms = await asyncio.gather(*(open_for(res, q) for _ in range(5)))
        assert {s.id for s in swarms} == {swarms[0].id}
        assert await Swarm.filter(question_id=q.id).count() == 1

    async def test_queues_invitations_once_with_a_job_id(self, res: Resources) -> None:
        jobs = RecordingJobs()
        q = await question(await member("asker"))
        swarm = await services.open_swarm(q.id, opened_by=None, reason="no_match", broker=res.broker, jobs=jobs)
        await services.open_swarm(q.id, opened_by=None, reason="no_match", broker=res.broker, jobs=jobs)
        assert jobs.calls == [("invite_helpers", f"invite:{swarm.id}", {"swarm_id": swarm.id})]

    async def test_resolved_question_keeps_its_status(self, res: Resources) -> None:
        asker, helper = await member("asker"), await member("helper")
        q = await question(asker)
        answer = await forum.post_answer(helper, q.id, "Call the bank to unblock it.")
        await forum.accept_answer(asker, answer.id)
        await open_for(res, q)
        assert (await Question.get(id=q.id)).status == QuestionStatus.RESOLVED


class TestPostMessage:
    async def test_seqs_are_gap_free_under_concurrent_writers(self, res: Resources) -> None:
        asker = await member("asker")
        writers = [asker] + [await member(f"helper{i}", "staff") for i in range(3)]
        swarm = await open_for(res, await question(asker))

        async def write(user: User) -> list[int]:
            return [(await say(res, swarm, user, f"{user.username} {i}", f"{user.username}-{i}")).frame["seq"]
                    for i in range(25)]

        seqs = [s for batch in await asyncio.gather(*(write(u) for u in writers)) for s in batch]
        assert sorted(seqs) == list(range(1, 101))
        assert (await Swarm.get(id=swarm.id)).last_seq == 100
        stored: list[Any] = list(await SwarmMessage.filter(swarm_id=swarm.id).order_by("seq")
                                 .values_list("seq", flat=True))
        assert stored == list(range(1, 101))

    async def test_retried_say_is_stored_once_and_answered_with_the_stored_message(self, res: Resources) -> None:
        asker = await member("asker")
        swarm = await open_for(res, await question(asker))
        first = await say(res, swarm, asker, "hello", "m-1")
        retry = await say(res, swarm, asker, "hello (edited retry body is ignored)", "m-1")
        assert first.created and not retry.created
        assert retry.frame == first.frame
        racing = await asyncio.gather(*(say(res, swarm, asker, "race", "m-2") for _ in range(4)))
        assert sum(p.created for p in racing) == 1 and len({p.frame["seq"] for p in racing}) == 1
        assert (await Swarm.get(id=swarm.id)).last_seq == 2, "a duplicate never consumes a seq"

    async def test_message_is_published_after_commit_with_its_seq(self, res: Resources) -> None:
        asker = await member("asker")
        swarm = await open_for(res, await question(asker))
        sub = await res.broker.subscribe([swarm_channel(swarm.id)])
        posted = await say(res, swarm, asker, "is anyone there?", "m-1")
        async with asyncio.timeout(2):
            envelope = await anext(aiter(sub))
        assert envelope.seq == 1 and envelope.type == "message" and envelope.data == posted.frame
        assert posted.frame["author"] == {"id": asker.id, "username": "asker", "role": "customer"}
        await sub.close()

    async def test_publish_failure_queues_a_republish(self, res: Resources) -> None:
        asker = await member("asker")
        swarm = await open_for(res, await question(asker))
        jobs = RecordingJobs()
        posted = await services.post_message(swarm.id, asker, "hi", "m-1", broker=DownBroker(), jobs=jobs)
        assert jobs.calls == [("republish", f"republish:{posted.frame['id']}", {"message_id": posted.frame["id"]})]
        sub = await res.broker.subscribe([swarm_channel(swarm.id)])
        assert await services.republish_message(posted.frame["id"], broker=res.broker)
        async with asyncio.timeout(2):
            assert (await anext(aiter(sub))).data == posted.frame
        await sub.close()

    async def test_helper_message_is_the_first_response_and_is_logged(self, res: Resources) -> None:
        asker, helper = await member("asker"), await member("helper", "staff")
        swarm = await open_for(res, await question(asker))
        await say(res, swarm, asker, "still broken", "a-1")
        assert not await Event.filter(kind="first_response").exists()
        await say(res, swarm, helper, "which card?", "h-1")
        first = await Event.get(kind="first_response")
        assert first.actor_id == helper.id  # type: ignore[attr-defined]
        assert await Event.filter(kind="swarm_message", swarm_id=swarm.id).count() == 2
        part = await SwarmParticipant.get(swarm_id=swarm.id, user_id=helper.id)
        assert part.messages == 1 and part.joined_at is not None

    async def test_first_messages_of_several_helpers_at_once_log_one_first_response(self, res: Resources) -> None:
        asker = await member("asker")
        helpers = [await member(f"helper{i}", "staff") for i in range(10)]
        swarm = await open_for(res, await question(asker))
        await asyncio.gather(*(say(res, swarm, h, "on it", f"{h.username}-1") for h in helpers))
        [first] = await Event.filter(kind="first_response", question_id=swarm.question_id)  # type: ignore[attr-defined]
        assert first.actor_id in {h.id for h in helpers}  # type: ignore[attr-defined]

    async def test_without_the_first_response_check_a_say_keeps_every_guarantee(self, res: Resources) -> None:
        """The room session's path (first_response=False): one statement, the same rows and events."""
        asker = await member("asker")
        helpers = [await member(f"helper{i}", "staff") for i in range(3)]
        swarm = await open_for(res, await question(asker))

        async def write(user: User) -> list[services.Posted]:
            return [await services.post_message(swarm.id, user, f"{user.username} {i}", f"{user.username}-{i}",
                                                broker=res.broker, jobs=res.jobs, first_response=False)
                    for i in range(10)]

        posted = [p for batch in await asyncio.gather(*(write(u) for u in helpers)) for p in batch]
        assert sorted(p.frame["seq"] for p in posted) == list(range(1, 31)) and all(p.created for p in posted)
        racing = await asyncio.gather(*(services.post_message(swarm.id, asker, "race", "r-1", broker=res.broker,
                                                              jobs=res.jobs, first_response=False)
                                        for _ in range(4)))
        assert sum(p.created for p in racing) == 1 and {p.frame["seq"] for p in racing} == {31}
        assert (await Swarm.get(id=swarm.id)).last_seq == 31, "a duplicate never consumes a seq"
        events = await Event.filter(kind="swarm_message", swarm_id=swarm.id).order_by("id")
        by_seq = {p.frame["seq"]: p.frame for p in posted}
        assert sorted(e.data["seq"] for e in events) == list(range(1, 32))
        for e in events[:-1]:
            assert e.question_id == swarm.question_id and e.at.isoformat() == by_seq[e.data["seq"]]["at"]  # type: ignore[attr-defined]
            assert e.actor_id == by_seq[e.data["seq"]]["author"]["id"]  # type: ignore[attr-defined]
        parts = {p.user_id: p for p in await SwarmParticipant.filter(swarm_id=swarm.id)}  # type: ignore[attr-defined]
        assert [parts[h.id].messages for h in helpers] == [10, 10, 10] and parts[asker.id].messages == 1
        assert all(p.joined_at is not None for p in parts.values())
        assert not await Event.filter(kind="first_response").exists(), "the caller said it could not be one"
        stored = await SwarmMessage.get(swarm_id=swarm.id, seq=31)
        assert (stored.author_id, stored.body, stored.client_msg_id) == (asker.id, "race", "r-1")  # type: ignore[attr-defined]

    async def test_a_resolved_or_missing_room_refuses_messages(self, res: Resources) -> None:
        asker, helper = await member("asker"), await member("helper", "staff")
        swarm = await open_for(res, await question(asker))
        first = await say(res, swarm, helper, "try the other card", "h-1")
        await services.resolve_swarm(swarm.id, asker, 1, broker=res.broker, expert_reputation=EXPERT_REP)
        for check in (True, False):
            with pytest.raises(RoomClosed):
                await services.post_message(swarm.id, helper, "more", f"h-2-{check}", broker=res.broker,
                                            jobs=res.jobs, first_response=check)
            again = await services.post_message(swarm.id, helper, "x", "h-1", broker=res.broker, jobs=res.jobs,
                                                first_response=check)
            assert again == services.Posted(first.frame, False), "a retry is answered even after resolving"
        with pytest.raises(NotFound):
            await services.post_message(swarm.id + 1000, helper, "hello?", "h-3", broker=res.broker, jobs=res.jobs,
                                        first_response=False)
        assert (await Swarm.get(id=swarm.id)).last_seq == 1

    @pytest.mark.parametrize("body, cmid", [("", "ok"), ("x" * (services.MESSAGE_MAX + 1), "ok"), ("hi", ""),
                                            ("hi", "no spaces"), (None, "ok"), ("nul\x00", "ok")])
    async def test_bad_input_is_refused(self, res: Resources, body: Any, cmid: Any) -> None:
        asker = await member("asker")
        swarm = await open_for(res, await question(asker))
        with pytest.raises(InvalidInput):
            await say(res, swarm, asker, body, cmid)


class TestJoin:
    async def test_askers_helpers_and_reputable_customers_may_join_others_not(self, res: Resources) -> None:
        asker = await member("asker")
        swarm = await services.get_swarm((await open_for(res, await question(asker))).id)
        for user in (asker, await member("exp", "expert"), await member("rich", reputation=EXPERT_REP),
                     await member("sam", "staff")):
            assert await services.join_swarm(swarm, user, expert_reputation=EXPERT_REP)
        with pytest.raises(Forbidden):
            await services.join_swarm(swarm, await member("stranger"), expert_reputation=EXPERT_REP)

    async def test_reconnects_are_not_joins_but_rejoining_after_leave_is(self, res: Resources) -> None:
        asker = await member("asker")
        swarm = await services.get_swarm((await open_for(res, await question(asker))).id)
        assert await services.join_swarm(swarm, asker, expert_reputation=EXPERT_REP)
        assert not await services.join_swarm(swarm, asker, expert_reputation=EXPERT_REP)
        assert await services.leave_swarm(swarm, asker)
        assert await services.join_swarm(swarm, asker, expert_reputation=EXPERT_REP)
        kinds: list[Any] = list(await Event.filter(swarm_id=swarm.id, kind__in=["swarm_joined", "swarm_left"])
                                .order_by("id").values_list("kind", flat=True))
        assert kinds == ["swarm_joined", "swarm_left", "swarm_joined"]


class TestResolve:
    async def test_marked_message_becomes_the_accepted_answer(self, res: Resources) -> None:
        asker, helper, chatty = await member("asker"), await member("helper", "staff"), await member("chat", "expert")
        q = await question(asker)
        swarm = await open_for(res, q)
        await say(res, swarm, asker, "card declined", "a-1")
        await say(res, swarm, chatty, "me too sometimes", "c-1")
        sol = await say(res, swarm, helper, "Unblock online payments in the app settings.", "h-1")
        sub = await res.broker.subscribe([swarm_channel(swarm.id)])
        jobs = RecordingJobs()
        answer = await services.resolve_swarm(swarm.id, asker, sol.frame["seq"], broker=res.broker,
                                              expert_reputation=EXPERT_REP, jobs=jobs)
        assert jobs.calls == [("update_expertise", f"expertise:swarm:{swarm.id}",
                               {"user_ids": sorted([helper.id, chatty.id])})]
        stored = await Answer.get(id=answer.id)
        assert stored.is_accepted and stored.from_swarm_id == swarm.id  # type: ignore[attr-defined]
        assert stored.author_id == helper.id and stored.body == sol.frame["body"]  # type: ignore[attr-defined]
        fresh_q = await Question.get(id=q.id)
        assert fresh_q.status == QuestionStatus.RESOLVED and fresh_q.accepted_answer_id == answer.id  # type: ignore[attr-defined]
        fresh = await Swarm.get(id=swarm.id)
        assert fresh.status == SwarmStatus.RESOLVED and fresh.solution_answer_id == answer.id  # type: ignore[attr-defined]
        assert (await User.get(id=helper.id)).reputation == 1 + forum.REP_ACCEPTED
        assert (await User.get(id=chatty.id)).reputation == 1 + services.REP_SWARM_HELPER
        event = await Event.get(kind="swarm_resolved")
        assert event.data["helpers_credited"] == [chatty.id] and event.data["messages"] == 3
        async with asyncio.timeout(2):
            assert (await anext(aiter(sub))).data["answer_id"] == answer.id
        await sub.close()
        with pytest.raises(RoomClosed):
            await services.resolve_swarm(swarm.id, asker, 1, broker=res.broker, expert_reputation=EXPERT_REP)
        with pytest.raises(RoomClosed):
            await say(res, swarm, helper, "one more thing", "h-2")

    async def test_expert_in_the_room_may_mark_and_edit_strangers_may_not(self, res: Resources) -> None:
        asker, expert = await member("asker"), await member("exp", "expert")
        outsider = await member("outsider", "expert")
        q = await question(asker)
        swarm = await open_for(res, q)
        sol = await say(res, swarm, expert, "try this", "e-1")
        with pytest.raises(Forbidden):
            await services.resolve_swarm(swarm.id, outsider, 1, broker=res.broker, expert_reputation=EXPERT_REP)
        answer = await services.resolve_swarm(swarm.id, expert, sol.frame["seq"], body="Turn the card off and on.",
                                              broker=res.broker, expert_reputation=EXPERT_REP)
        assert (await Answer.get(id=answer.id)).body == "Turn the card off and on."
        assert (await Question.get(id=q.id)).accepted_answer_id == answer.id  # type: ignore[attr-defined]

    async def test_failed_resolve_leaves_the_swarm_open(self, res: Resources) -> None:
        asker = await member("asker")
        swarm = await open_for(res, await question(asker))
        await say(res, swarm, asker, "ok", "a-1")  # too short to be an answer
        with pytest.raises(InvalidInput):
            await services.resolve_swarm(swarm.id, asker, 1, broker=res.broker, expert_reputation=EXPERT_REP)
        assert (await Swarm.get(id=swarm.id)).status == SwarmStatus.OPEN
        assert not await Answer.exists()

    async def test_incident_swarm_answers_every_linked_question(self, res: Resources) -> None:
        staff = await member("sam", "staff")
        askers = [await member(f"asker{i}") for i in range(3)]
        qs = [await question(a, title=f"Payments failing since noon #{i}") for i, a in enumerate(askers)]
        swarm = await services.open_swarm(qs[0].id, opened_by=staff, reason="incident", broker=res.broker,
                                          jobs=res.jobs)
        assert await services.link_questions_to_swarm(swarm.id, [q.id for q in qs], broker=res.broker) == \
            [qs[1].id, qs[2].id]
        assert (await services.swarm_for_question(qs[2].id)).id == swarm.id  # type: ignore[union-attr]
        full = await services.get_swarm(swarm.id)
        assert await services.join_swarm(full, askers[2], expert_reputation=EXPERT_REP)
        sol = await say(res, swarm, staff, "The processor is back; retry the payment.", "s-1")
        await services.resolve_swarm(swarm.id, staff, sol.frame["seq"], broker=res.broker,
                                     expert_reputation=EXPERT_REP)
        for q in qs:
            fresh = await Question.get(id=q.id)
            assert fresh.status == QuestionStatus.RESOLVED
            accepted = await Answer.get(id=fresh.accepted_answer_id)  # type: ignore[attr-defined]
            assert accepted.from_swarm_id == swarm.id  # type: ignore[attr-defined]


class TestWhoCanHelp:
    async def test_profile_from_good_answers_ranks_the_right_helper_first(self, res: Resources) -> None:
        asker = await member("asker")
        cards, passwords = await member("cardy", "expert"), await member("passy", "expert")
        for i in range(2):
            q1 = await question(asker, title=f"Card declined at shop number {i}", tags=["cards"])
            a1 = await forum.post_answer(cards, q1.id, "Your card payment was declined: unblock the card in the app.")
            await forum.accept_answer(asker, a1.id)
            q2 = await question(asker, title=f"Forgot my password again {i}", tags=["login"])
            a2 = await forum.post_answer(passwords, q2.id, "Reset the password from the login screen link.")
            await forum.accept_answer(asker, a2.id)
        assert await expertise.rebuild_expertise(embedder=res.embedder, expert_reputation=EXPERT_REP) >= 2
        new = await question(await member("newbie"), title="My card was declined at the grocery", tags=["cards"])
        ranked = await expertise.rank_helpers(new.id, embedder=res.embedder, broker=res.broker,
                                              expert_reputation=EXPERT_REP, exclude=set())
        assert [m.username for m in ranked[:2]] == ["cardy", "passy"]
        assert ranked[0].tags == 1.0 and ranked[0].similarity > ranked[1].similarity

    async def test_invitations_go_to_on_duty_staff_and_matching_experts_live(self, res: Resources) -> None:
        asker = await member("asker")
        duty, off = await member("duty", "staff", on_duty=True), await member("off", "staff")
        expert = await member("cardy", "expert")
        q0 = await question(asker, title="Card declined at the shop", tags=["cards"])
        await forum.accept_answer(asker, (await forum.post_answer(expert, q0.id, "Unblock the card in the app.")).id)
        await expertise.rebuild_expertise(embedder=res.embedder, expert_reputation=EXPERT_REP)
        q = await question(asker, title="Card declined online", tags=["cards"])
        jobs = RecordingJobs()
        swarm = await services.open_swarm(q.id, opened_by=None, reason="no_match", broker=res.broker, jobs=jobs)
        sub = await res.broker.subscribe([user_channel(duty.id), user_channel(expert.id), user_channel(off.id)])
        invited = await expertise.invite_helpers(swarm.id, embedder=res.embedder, broker=res.broker,
                                                 expert_reputation=EXPERT_REP)
        assert set(invited) == {duty.id, expert.id}
        assert await expertise.invite_helpers(swarm.id, embedder=res.embedder, broker=res.broker,
                                              expert_reputation=EXPERT_REP) == [], "idempotent"
        got = []
        async with asyncio.timeout(2):
            async for envelope in sub:
                got.append(envelope.channel)
                if len(got) == 2:
                    break
        assert sorted(got) == sorted([user_channel(duty.id), user_channel(expert.id)])
        part = await SwarmParticipant.get(swarm_id=swarm.id, user_id=expert.id)
        assert part.invited_at is not None and part.joined_at is None
        await sub.close()

    async def test_inbox_is_ranked_for_the_viewer(self, res: Resources) -> None:
        helper, asker, other = await member("sam", "staff"), await member("asker"), await member("other")
        calm = await open_for(res, await question(asker, title="A calm question about fees", tags=["fees"]))
        urgent = await open_for(res, await question(other, title="Everything is down right now", tags=["outage"]))
        items = await expertise.ranked_inbox(helper, expert_reputation=EXPERT_REP, urgent_tags=("outage",),
                                             sla_minutes=30)
        assert [i["id"] for i in items] == [urgent.id, calm.id]
        assert items[0]["urgent"] and not items[1]["urgent"]
        mine = await expertise.ranked_inbox(asker, expert_reputation=EXPERT_REP, urgent_tags=(), sla_minutes=30)
        assert [i["id"] for i in mine] == [calm.id], "customers see only their own swarms"


async def test_sla_watch_opens_swarms_for_overdue_questions(res: Resources) -> None:
    asker = await member("asker")
    old = await question(asker, title="Old unanswered question here", created_at=datetime.now(UTC) - timedelta(hours=1))
    await question(asker, title="Fresh question asked just now")
    jobs = RecordingJobs()
    result = await services.watch_sla(sla_minutes=30, broker=res.broker, jobs=jobs)
    swarm = await Swarm.get(question_id=old.id)
    assert result["opened"] == [swarm.id] and swarm.reason == "sla"
    assert await Swarm.all().count() == 1
    assert (await services.watch_sla(sla_minutes=30, broker=res.broker, jobs=jobs))["opened"] == []
