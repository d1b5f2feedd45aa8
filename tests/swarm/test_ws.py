"""The room protocol against real uvicorn servers with the `websockets` client (DESIGN.md "Swarm rooms").

Data is set up through the services of the in-process app; the sockets go to separate server processes
that share the database and a Redis namespace, as replicas behind a load balancer do.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from supportswarm.accounts import services as accounts
from supportswarm.accounts.models import User
from supportswarm.forum.models import Answer, Question, QuestionStatus
from supportswarm.metrics.models import Event
from supportswarm.moderation.visibility import HIDDEN_TEXT
from supportswarm.resources import Resources
from supportswarm.swarm import services
from supportswarm.swarm.models import Swarm, SwarmMessage, SwarmParticipant
from tests.security.scene import NoJobs
from tests.swarm.conftest import Server
from tests.swarm.helpers import PASSWORD, member, question, wait_for
from tests.swarm.wsclient import Member, join, open_socket

pytestmark = pytest.mark.timeout(60)


async def room(resources: Resources, *helpers: tuple[str, str]) -> tuple[Swarm, dict[str, str]]:
    """A swarm on a fresh question by `asker`, and a token per user (asker + `helpers` as (name, role))."""
    asker = await member("asker")
    users = [asker] + [await member(name, role) for name, role in helpers]
    q = await question(asker)
    swarm = await services.open_swarm(q.id, opened_by=asker, reason="manual", broker=resources.broker,
                                      jobs=NoJobs())
    return swarm, {u.username: await accounts.create_token(u) for u in users}




async def test_two_members_chat_and_see_each_other(resources: Resources, servers: list[Server]) -> None:
    swarm, tokens = await room(resources, ("sam", "staff"))
    a = await join(servers[0], swarm.id, tokens["asker"])
    assert a.welcome["swarm"]["id"] == swarm.id and a.welcome["backlog"] == [] and a.welcome["head"] == 0
    b = await join(servers[0], swarm.id, tokens["sam"])
    await a.presence({"asker", "sam"})
    cmid = await a.say("my card is declined")
    for m in (a, b):
        got = await m.next("message")
        assert (got["seq"], got["body"], got["client_msg_id"], got["author"]["username"]) == \
            (1, "my card is declined", cmid, "asker")
    await b.say("which card?")
    assert [(await m.next("message"))["seq"] for m in (a, b)] == [2, 2]
    await b.close()
    await a.presence({"asker"})
    await a.close()


async def test_reconnect_with_last_seq_gets_exactly_the_missed_messages(resources: Resources,
                                                                       servers: list[Server]) -> None:
    swarm, tokens = await room(resources, ("sam", "staff"))
    a = await join(servers[0], swarm.id, tokens["asker"])
    b = await join(servers[0], swarm.id, tokens["sam"])
    await a.say("one")
    await a.say("two")
    assert [m["seq"] for m in await b.messages(2)] == [1, 2]
    await b.close()
    for body in ("three", "four", "five"):
        await a.say(body)
    await a.messages(5)
    again = await join(servers[1], swarm.id, tokens["sam"], last_seq=2)  # another replica: no sticky sessions
    assert [(m["seq"], m["body"]) for m in again.welcome["backlog"]] == [(3, "three"), (4, "four"), (5, "five")]
    await a.say("six")
    assert [m["seq"] for m in await again.messages(1)] == [6]
    at_head = await join(servers[0], swarm.id, tokens["sam"], last_seq=6)
    assert at_head.welcome["backlog"] == [] and at_head.welcome["head"] == 6 and not at_head.welcome["reset"]
    ahead = await join(servers[0], swarm.id, tokens["sam"], last_seq=99)  # e.g. a client of another database
    assert ahead.welcome["reset"] and ahead.welcome["head"] == 6
    assert [m["seq"] for m in ahead.welcome["backlog"]] == [1, 2, 3, 4, 5, 6]
    for m in (a, again, at_head, ahead):
        await m.close()


async def test_a_retried_say_is_stored_and_delivered_once(resources: Resources, servers: list[Server]) -> None:
    swarm, tokens = await room(resources, ("sam", "staff"))
    a = await join(servers[0], swarm.id, tokens["asker"])
    b = await join(servers[1], swarm.id, tokens["sam"])
    await a.say("hello?", "retry-me")
    assert (await a.next("message"))["seq"] == 1
    await a.say("hello?", "retry-me")  # e.g. the echo was lost with the connection
    echo = await a.next("message")
    assert echo["seq"] == 1 and echo["client_msg_id"] == "retry-me", "the sender gets the stored message"
    await b.say("hi")
    first = (await b.messages(2))[0]
    assert (first["seq"], first["client_msg_id"]) == (1, "retry-me"), "the other member got it once"
    assert await SwarmMessage.filter(swarm_id=swarm.id).count() == 2
    await a.close()
    await b.close()


async def test_says_sent_in_a_burst_are_stored_in_order_before_the_next_command(resources: Resources,
                                                                             servers: list[Server]) -> None:
    """The session reads on while says are stored (a client's burst goes to the database as one group);
    their seqs still follow the order sent, a bad one among them is refused alone, and a later command
    (here mark_solution of the last one) runs once they are stored."""
    swarm, tokens = await room(resources, ("sam", "staff"))
    a = await join(servers[0], swarm.id, tokens["asker"])
    b = await join(servers[1], swarm.id, tokens["sam"])
    sent = [f"burst-{i}" for i in range(8)]
    for i, cmid in enumerate(sent):
        await b.say(f"step {i}", cmid)
        if i == 4:
            await b.say("   ", "blank")
    await b.send({"type": "mark_solution", "seq": len(sent)})
    seen: list[tuple[str, Any]] = []
    async with asyncio.timeout(10):
        while not seen or seen[-1][0] != "resolved":
            frame = json.loads(await b.ws.recv())
            if frame["type"] in ("message", "error", "resolved"):
                seen.append((frame["type"], frame.get("seq") or frame.get("client_msg_id")))
    assert [x for kind, x in seen if kind == "message"] == list(range(1, len(sent) + 1))
    assert [x for kind, x in seen if kind == "error"] == ["blank"]
    assert [(m["seq"], m["client_msg_id"]) for m in await a.messages(len(sent))] == list(enumerate(sent, 1))
    answer = await Answer.get(question_id=swarm.question_id)  # type: ignore[attr-defined]
    assert answer.body == "step 7"
    await a.close()
    await b.close()


async def test_says_sent_just_before_the_client_goes_away_are_stored(resources: Resources,
                                                                   servers: list[Server]) -> None:
    swarm, tokens = await room(resources, ("sam", "staff"))
    b = await join(servers[0], swarm.id, tokens["sam"])
    sent = [await b.say(f"last words {i}") for i in range(3)]
    await b.ws.close()  # without waiting for the echoes

    async def stored() -> bool:
        return await SwarmMessage.filter(swarm_id=swarm.id).count() == len(sent)

    await wait_for(stored, 5.0)
    assert [m.client_msg_id for m in await SwarmMessage.filter(swarm_id=swarm.id).order_by("seq")] == sent


async def test_room_messages_are_counted_and_the_first_response_is_logged_once(resources: Resources,
                                                                              servers: list[Server]) -> None:
    """A session checks for the first response only until its user's first message is stored."""
    swarm, tokens = await room(resources, ("sam", "staff"), ("exp", "expert"))
    a = await join(servers[0], swarm.id, tokens["asker"])
    b = await join(servers[1], swarm.id, tokens["sam"])

    async def stored(m: Member, body: str) -> None:  # the sender's echo comes after the commit
        cmid = await m.say(body)
        while (await m.next("message"))["client_msg_id"] != cmid:
            pass

    for body in ("still declined", "any idea?"):
        await stored(a, body)
    assert not await Event.filter(kind="first_response").exists(), "the asker's messages never count"
    c = await join(servers[0], swarm.id, tokens["exp"])
    for m, body in ((c, "which card?"), (b, "checking the logs"), (c, "try again now")):
        await stored(m, body)
    first = await Event.get(kind="first_response")
    assert (first.actor_id, first.question_id) == ((await User.get(username="exp")).id, swarm.question_id)  # type: ignore[attr-defined]
    logged = await Event.filter(kind="swarm_message", swarm_id=swarm.id).order_by("id")
    assert [e.data["seq"] for e in logged] == [1, 2, 3, 4, 5]
    counts = dict(await SwarmParticipant.filter(swarm_id=swarm.id).values_list("user__username", "messages"))
    assert counts == {"asker": 2, "exp": 2, "sam": 1}
    for m in (a, b, c):
        await m.close()


async def test_members_on_different_processes_see_messages_and_presence(resources: Resources,
                                                                        servers: list[Server]) -> None:
    swarm, tokens = await room(resources, ("sam", "staff"), ("exp", "expert"))
    a = await join(servers[0], swarm.id, tokens["asker"])
    b = await join(servers[1], swarm.id, tokens["sam"])
    c = await join(servers[1], swarm.id, tokens["exp"])
    await a.presence({"asker", "sam", "exp"})
    # The two says race across processes: PostgreSQL decides their order, and every member must see that one.
    await b.say("from process two")
    await a.say("from process one")
    seen = [[(x["seq"], x["body"]) for x in await m.messages(2)] for m in (a, b, c)]
    assert seen[0] == seen[1] == seen[2]
    assert sorted(body for _, body in seen[0]) == ["from process one", "from process two"]
    assert [seq for seq, _ in seen[0]] == [1, 2]
    await c.send({"type": "typing"})
    assert (await a.next("typing"))["user"]["username"] == "exp"
    for m in (a, b, c):
        await m.close()


async def test_marking_the_solution_resolves_the_question(resources: Resources, servers: list[Server]) -> None:
    swarm, tokens = await room(resources, ("sam", "staff"))
    a = await join(servers[0], swarm.id, tokens["asker"])
    b = await join(servers[1], swarm.id, tokens["sam"])
    await b.say("Unblock online payments in the card settings.")
    seq = (await a.next("message"))["seq"]
    await a.send({"type": "mark_solution", "seq": seq})
    resolved = (await a.next("resolved"), await b.next("resolved"))
    answer_id = resolved[0]["answer_id"]
    assert resolved[1]["answer_id"] == answer_id
    q = await Question.get(id=swarm.question_id)  # type: ignore[attr-defined]
    assert q.status == QuestionStatus.RESOLVED and q.accepted_answer_id == answer_id  # type: ignore[attr-defined]
    assert (await Answer.get(id=answer_id)).from_swarm_id == swarm.id  # type: ignore[attr-defined]
    await a.say("thanks!")
    error = await a.next("error")
    assert error["code"] == "room_closed"
    await a.close()
    await b.close()


async def test_strangers_unauthenticated_and_unknown_rooms_are_refused(resources: Resources,
                                                                       servers: list[Server]) -> None:
    swarm, tokens = await room(resources)
    stranger = await member("stranger")
    cases = [(swarm.id, await accounts.create_token(stranger), 4403), (swarm.id, None, 4401),
             (swarm.id + 1000, tokens["asker"], 4404)]
    for swarm_id, token, code in cases:
        ws = await open_socket(servers[0], f"/ws/swarms/{swarm_id}", token=token)
        frame = json.loads(await ws.recv())
        assert frame["type"] == "error"
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code == code, (swarm_id, token, frame)


async def test_cross_site_origins_are_refused(resources: Resources, servers: list[Server]) -> None:
    swarm, tokens = await room(resources)
    async with httpx.AsyncClient(base_url=servers[0].http) as http:
        login = await http.post("/api/v1/auth/login", json={"username": "asker", "password": PASSWORD})
        cookie = f"ss_session={login.cookies['ss_session']}"
    path = f"/ws/swarms/{swarm.id}"
    for origin, kw in [("http://evil.example", {"cookie": cookie}), ("http://evil.example", {"token": tokens["asker"]}),
                       (None, {"cookie": cookie})]:
        with pytest.raises(InvalidStatus) as refused:
            await open_socket(servers[0], path, origin=origin, **kw)
        assert refused.value.response.status_code == 403
    same = await open_socket(servers[0], path, origin=servers[0].http, cookie=cookie)
    await same.send(json.dumps({"type": "hello", "last_seq": 0}))
    assert json.loads(await same.recv())["type"] == "welcome"
    await same.close()


@pytest.mark.parametrize("frame, code", [
    ("not json", 4400), ('{"type": "shout"}', 4400), ('["hello"]', 4400),
    (json.dumps({"type": "say", "client_msg_id": "x", "body": "y" * 20_000}), 4400),
])
async def test_bad_frames_close_with_4400(resources: Resources, servers: list[Server], frame: str,
                                          code: int) -> None:
    swarm, tokens = await room(resources)
    m = await join(servers[0], swarm.id, tokens["asker"])
    await m.ws.send(frame)
    assert await m.close_code() == code


async def test_invalid_frames_get_an_error_frame_and_first_frame_must_be_hello(resources: Resources,
                                                                               servers: list[Server]) -> None:
    swarm, tokens = await room(resources)
    m = await join(servers[0], swarm.id, tokens["asker"])
    await m.send({"type": "say", "client_msg_id": "ok-1", "body": "   "})
    error = await m.next("error")
    assert (error["code"], error["field"], error["client_msg_id"]) == ("invalid_input", "body", "ok-1")
    await m.send({"type": "mark_solution", "seq": "1"})
    assert (await m.next("error"))["field"] == "seq"
    await m.close()
    ws = await open_socket(servers[0], f"/ws/swarms/{swarm.id}", token=tokens["asker"])
    await ws.send(json.dumps({"type": "say", "client_msg_id": "a", "body": "b"}))
    assert json.loads(await ws.recv())["code"] == "bad_frame"
    await asyncio.wait_for(ws.wait_closed(), 5)
    assert ws.close_code == 4400


async def test_flooding_gets_errors_then_4429(resources: Resources, servers: list[Server]) -> None:
    swarm, tokens = await room(resources)
    m = await join(servers[0], swarm.id, tokens["asker"])
    for i in range(30):
        await m.say(f"spam {i}", f"spam-{i}")
    error = await m.next("error")
    assert error["code"] == "rate_limited" and error["retry_after"] > 0
    assert await m.close_code() == 4429
    stored = await SwarmMessage.filter(swarm_id=swarm.id).count()
    assert 1 <= stored <= 10


async def test_http_api_opens_and_reads_swarms(resources: Resources, servers: list[Server]) -> None:
    asker, staff = await member("asker"), await member("sam", "staff")
    q = await question(asker)
    tokens = {u.username: await accounts.create_token(u) for u in (asker, staff, await member("stranger"))}
    async with httpx.AsyncClient(base_url=servers[0].http) as http:
        def auth(name: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens[name]}"}

        refused = await http.post(f"/api/v1/questions/{q.id}/swarm", headers=auth("stranger"))
        assert refused.status_code == 403
        opened = await http.post(f"/api/v1/questions/{q.id}/swarm", headers=auth("asker"))
        assert opened.status_code == 201
        body = opened.json()
        assert body == {"id": body["id"], "question_id": q.id, "status": "open",
                        "ws_url": f"ws://127.0.0.1:{servers[0].port}/ws/swarms/{body['id']}"}
        again = await http.post(f"/api/v1/questions/{q.id}/swarm", headers=auth("sam"))
        assert again.status_code == 200 and again.json()["id"] == body["id"]
        m = await join(servers[0], body["id"], tokens["asker"])
        await m.say("hello from the API test")
        await m.messages(1)
        view = (await http.get(f"/api/v1/swarms/{body['id']}", headers=auth("sam"))).json()
        assert [x["body"] for x in view["messages"]] == ["hello from the API test"]
        assert [(x["username"], x["status"]) for x in view["members"]] == [("asker", "online")]
        assert (await http.get(f"/api/v1/swarms/{body['id']}", headers=auth("stranger"))).status_code == 403
        inbox = (await http.get("/api/v1/swarms?status=open", headers=auth("sam"))).json()
        assert [i["id"] for i in inbox["items"]] == [body["id"]]
        page = await http.get(f"/swarms/{body['id']}", headers=auth("sam"))
        assert page.status_code == 200 and 'data-swarm-id="' in page.text
        assert (await http.get("/inbox", headers=auth("sam"))).status_code == 200
        await m.close()
        user = await User.get(username="asker")
        assert user.id == asker.id


async def test_inbox_socket_hears_swarms_open_on_another_process(resources: Resources,
                                                                 servers: list[Server]) -> None:
    asker, staff = await member("asker"), await member("sam", "staff")
    q = await question(asker)
    inbox = await open_socket(servers[1], "/ws/inbox", token=await accounts.create_token(staff))
    assert json.loads(await inbox.recv())["type"] == "welcome"
    async with httpx.AsyncClient(base_url=servers[0].http) as http:
        opened = await http.post(f"/api/v1/questions/{q.id}/swarm",
                                 headers={"Authorization": f"Bearer {await accounts.create_token(asker)}"})
    async with asyncio.timeout(5):
        while (hint := json.loads(await inbox.recv()))["type"] != "inbox":
            pass
    assert hint == {"type": "inbox", "op": "opened", "swarm_id": opened.json()["id"]}
    await inbox.close()
    anonymous = await open_socket(servers[0], "/ws/inbox")
    assert json.loads(await anonymous.recv())["code"] == "not_authenticated"
    await asyncio.wait_for(anonymous.wait_closed(), 5)
    assert anonymous.close_code == 4401


async def test_an_account_change_ends_the_users_sockets_on_every_replica(resources: Resources,
                                                                          servers: list[Server]) -> None:
    swarm, tokens = await room(resources, ("sam", "staff"), ("pat", "expert"))
    admin = await member("root", "admin")
    sam, pat = await User.get(username="sam"), await User.get(username="pat")
    asker = await join(servers[0], swarm.id, tokens["asker"])
    sam_room = await join(servers[1], swarm.id, tokens["sam"])  # on the other replica than the admin's request
    sam_inbox = await open_socket(servers[0], "/ws/inbox", token=tokens["sam"])
    pat_room = await join(servers[1], swarm.id, tokens["pat"])
    async with httpx.AsyncClient(base_url=servers[0].http,
                                 headers={"Authorization": f"Bearer {await accounts.create_token(admin)}"}) as http:
        deactivated = await http.patch(f"/api/v1/users/{sam.id}", json={"is_active": False})
        demoted = await http.patch(f"/api/v1/users/{pat.id}", json={"role": "customer"})
    assert deactivated.status_code == demoted.status_code == 200
    assert await sam_room.next("reconnect") == {"type": "reconnect", "reason": "account"}
    assert await sam_room.close_code() == 4001
    assert await Member(sam_inbox, {"backlog": [], "head": 0}).close_code() == 4001, "the inbox too"
    assert await pat_room.close_code() == 4001
    back = await open_socket(servers[1], f"/ws/swarms/{swarm.id}", token=tokens["sam"])
    assert json.loads(await back.recv())["code"] == "not_authenticated"
    demoted_back = await open_socket(servers[1], f"/ws/swarms/{swarm.id}", token=tokens["pat"])
    assert json.loads(await demoted_back.recv())["code"] == "forbidden", "a customer may not join another's room"
    await asyncio.wait_for(demoted_back.wait_closed(), 5)
    assert demoted_back.close_code == 4403
    await asker.say("still here?")
    assert (await asker.next("message"))["body"] == "still here?", "the other members are untouched"
    await asker.close()


async def test_a_message_hidden_or_restored_by_a_moderator_changes_in_open_rooms(resources: Resources,
                                                                                  servers: list[Server]) -> None:
    swarm, tokens = await room(resources, ("sam", "staff"), ("exp", "expert"))
    asker = await join(servers[1], swarm.id, tokens["asker"])
    exp = await join(servers[0], swarm.id, tokens["exp"])
    await exp.say("buy cheap pills at example.com")
    spam = await asker.next("message")
    async with httpx.AsyncClient(base_url=servers[0].http) as http:
        flagged = await http.post(f"/api/v1/swarms/{swarm.id}/messages/{spam['seq']}/flag", json={"reason": "spam"},
                                  headers={"Authorization": f"Bearer {tokens['asker']}"})
        staff = {"Authorization": f"Bearer {tokens['sam']}"}
        hidden = await http.post(f"/api/v1/flags/{flagged.json()['id']}/resolve", json={"action": "hide"},
                                 headers=staff)
        update = await asker.next("message_update")
        assert hidden.status_code == 200
        assert update["seq"] == spam["seq"] and update["body"] == HIDDEN_TEXT and update["id"] == spam["id"]
        assert (await exp.next("message_update"))["body"] == HIDDEN_TEXT, "on every replica"
        restored = await http.post(f"/api/v1/flags/{flagged.json()['id']}/resolve", json={"action": "restore"},
                                   headers=staff)
    assert restored.status_code == 200
    assert (await asker.next("message_update"))["body"] == "buy cheap pills at example.com"
    await asker.close()
    await exp.close()


async def test_a_password_change_ends_the_other_sessions_sockets(resources: Resources, servers: list[Server]) -> None:
    swarm, tokens = await room(resources)
    async with httpx.AsyncClient(base_url=servers[0].http) as phone:
        await phone.post("/api/v1/auth/login", json={"username": "asker", "password": PASSWORD})
        cookie = f"ss_session={phone.cookies['ss_session']}"
    ws = await open_socket(servers[1], f"/ws/swarms/{swarm.id}", origin=servers[1].http, cookie=cookie)
    await ws.send(json.dumps({"type": "hello", "last_seq": 0}))
    phone_room = Member(ws, json.loads(await ws.recv()))
    async with httpx.AsyncClient(base_url=servers[0].http) as laptop:  # another client of the same user
        changed = await laptop.post("/api/v1/me/password", json={"current_password": PASSWORD,
                                                                 "new_password": "a whole new password"},
                                    headers={"Authorization": f"Bearer {tokens['asker']}"})
    assert changed.status_code == 200, changed.text
    assert await phone_room.next("reconnect") == {"type": "reconnect", "reason": "account"}
    back = await open_socket(servers[1], f"/ws/swarms/{swarm.id}", origin=servers[1].http, cookie=cookie)
    assert json.loads(await back.recv())["code"] == "not_authenticated", "the phone's session ended, its socket too"
