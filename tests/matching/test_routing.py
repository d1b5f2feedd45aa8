"""Route on ask (POST /api/v1/questions) with the real model: a confident match is offered first and the
customer's verdict is recorded; otherwise the question is posted to the forum or a swarm."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from embeddings import Embedder
from supportswarm.forum.models import Question, QuestionStatus
from supportswarm.matching.models import Suggestion, SuggestionOutcome
from supportswarm.metrics.events import EventKind
from supportswarm.swarm.models import Swarm
from tests.conftest import Actor
from tests.matching.conftest import Answered, Forum, events

pytestmark = pytest.mark.model


@pytest.fixture
def embedder(real_embedder: Embedder) -> Embedder:
    return real_embedder


@pytest.fixture
async def solved(forum_content: Forum) -> Answered:
    item = await forum_content.answered("How do I reset my password?",
                                        "Use 'Forgot password' on the login page; the link is valid for 1 hour.")
    await forum_content.answered("How long does an international transfer take?",
                                 "Usually one to three business days.")
    await forum_content.settle()
    return item


SAME_PROBLEM = {"title": "How can I reset my password?", "body": "", "tags": ["login"]}
OPEN_PROBLEM = {"title": "Why is my statement for March missing?", "body": "", "tags": []}
NEW_PROBLEM = {"title": "The app crashes when I open the statements tab", "body": "Since today's update.",
               "tags": []}


async def ask(actor: Actor, payload: dict[str, Any]) -> httpx.Response:
    return await actor.post("/api/v1/questions", payload)


class TestConfidentMatch:
    async def test_is_offered_first_without_posting(self, make_user: Any, solved: Answered) -> None:
        customer = await make_user("customer")
        response = await ask(customer, SAME_PROBLEM)
        assert response.status_code == 200, response.text
        route = response.json()["route"]
        assert route["type"] == "suggested_answer"
        assert (route["question_id"], route["answer_id"]) == (solved.question_id, solved.answer_id)
        assert 0 < route["score"] <= 1
        assert await Question.filter(title=SAME_PROBLEM["title"]).count() == 0, "nothing posted yet"
        suggestion = await Suggestion.get(id=route["suggestion_id"])
        assert suggestion.outcome == SuggestionOutcome.SHOWN and suggestion.draft_tags == "login"
        (shown,) = await events(EventKind.SUGGESTION_SHOWN)
        assert (shown["actor_id"], shown["question_id"], shown["answer_id"]) == (
            customer.user["id"], solved.question_id, solved.answer_id)

    async def test_this_solved_my_problem_is_a_deflection(self, make_user: Any, solved: Answered) -> None:
        customer = await make_user("customer")
        route = (await ask(customer, SAME_PROBLEM)).json()["route"]
        accepted = await customer.post(f"/api/v1/suggestions/{route['suggestion_id']}/accept")
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["outcome"] == "accepted"
        assert [e["answer_id"] for e in await events(EventKind.SUGGESTION_ACCEPTED)] == [solved.answer_id]
        assert [e["answer_id"] for e in await events(EventKind.ANSWER_REUSED)] == [solved.answer_id]
        again = await customer.post(f"/api/v1/suggestions/{route['suggestion_id']}/accept")
        assert again.status_code == 200 and len(await events(EventKind.ANSWER_REUSED)) == 1, "a retried click"
        late = await customer.post(f"/api/v1/suggestions/{route['suggestion_id']}/reject")
        assert late.status_code == 409 and late.json()["error"]["code"] == "already_decided"
        assert await Question.filter(title=SAME_PROBLEM["title"]).count() == 0

    async def test_not_my_problem_posts_the_draft_and_routes_it(self, make_user: Any, solved: Answered,
                                                                forum_content: Forum) -> None:
        customer = await make_user("customer")
        route = (await ask(customer, SAME_PROBLEM)).json()["route"]
        rejected = await customer.post(f"/api/v1/suggestions/{route['suggestion_id']}/reject")
        assert rejected.status_code == 201, rejected.text
        body = rejected.json()
        assert body["route"] == {"type": "forum"}, "a close match exists, so the forum is the place"
        question = body["question"]
        assert (question["title"], question["tags"], question["author"]) == (SAME_PROBLEM["title"], ["login"],
                                                                           "customer")
        suggestion = await Suggestion.get(id=route["suggestion_id"])
        assert suggestion.outcome == SuggestionOutcome.REJECTED
        assert suggestion.posted_question_id == question["id"]  # type: ignore[attr-defined]
        (rejection,) = await events(EventKind.SUGGESTION_REJECTED)
        assert (rejection["question_id"], rejection["data"]["posted_question_id"]) == (solved.question_id,
                                                                                     question["id"])
        assert [e["question_id"] for e in await events(EventKind.QUESTION_ASKED)][-1] == question["id"]
        await forum_content.settle()
        posted = await Question.get(id=question["id"])
        assert posted.embedding_model is not None, "embedded after the transaction committed"
        retry = await customer.post(f"/api/v1/suggestions/{route['suggestion_id']}/reject")
        assert retry.status_code == 201 and retry.json()["question"]["id"] == question["id"], "posted once"

    async def test_only_the_asker_decides(self, make_user: Any, solved: Answered) -> None:
        customer, other = await make_user("customer"), await make_user("other")
        route = (await ask(customer, SAME_PROBLEM)).json()["route"]
        for verdict in ("accept", "reject"):
            response = await other.post(f"/api/v1/suggestions/{route['suggestion_id']}/{verdict}")
            assert response.status_code == 403
        assert (await Suggestion.get(id=route["suggestion_id"])).outcome == SuggestionOutcome.SHOWN
        missing = await customer.post("/api/v1/suggestions/999999/accept")
        assert missing.status_code == 404

    async def test_force_posts_anyway(self, make_user: Any, solved: Answered) -> None:
        customer = await make_user("customer")
        response = await ask(customer, SAME_PROBLEM | {"force": True})
        assert response.status_code == 201 and response.json()["route"] == {"type": "forum"}
        assert await Suggestion.all().count() == 0


class TestNoConfidentMatch:
    async def test_one_like_an_unanswered_question_goes_to_the_forum(self, make_user: Any, solved: Answered,
                                                                      forum_content: Forum) -> None:
        await forum_content.question("My statement for March is missing")
        await forum_content.settle()
        response = await ask(await make_user("customer"), OPEN_PROBLEM)
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["route"] == {"type": "forum"}, "its twin is in the forum already: helpers will see both"
        assert body["question"]["status"] == "open"
        assert await Swarm.all().count() == 0

    async def test_nothing_related_opens_a_swarm(self, make_user: Any, solved: Answered) -> None:
        response = await ask(await make_user("customer"), NEW_PROBLEM)
        assert response.status_code == 201, response.text
        route, question = response.json()["route"], response.json()["question"]
        swarm = await Swarm.get(question_id=question["id"])
        assert route == {"type": "swarm", "swarm_id": swarm.id, "ws_url": f"/ws/swarms/{swarm.id}",
                         "reason": "no_match"}
        assert (await Question.get(id=question["id"])).status == QuestionStatus.SWARMING

    async def test_an_urgent_tag_opens_a_swarm_even_when_related(self, make_user: Any, solved: Answered,
                                                                 forum_content: Forum) -> None:
        await forum_content.question("My statement for March is missing")
        await forum_content.settle()
        response = await ask(await make_user("customer"), OPEN_PROBLEM | {"tags": ["urgent"]})
        assert response.status_code == 201
        assert response.json()["route"]["type"] == "swarm" and response.json()["route"]["reason"] == "urgent"

    async def test_the_first_question_of_an_empty_forum_opens_a_swarm(self, make_user: Any) -> None:
        response = await ask(await make_user("customer"), SAME_PROBLEM)
        assert response.status_code == 201 and response.json()["route"]["type"] == "swarm"


class TestBadInput:
    @pytest.mark.parametrize(("payload", "field"), [
        ({"body": "no title"}, "title"),
        ({"title": "short"}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "A long enough title", "body": 42}, "body"),
        ({"title": "A long enough title", "tags": "not a valid tag!"}, "tags"),
        ({"title": "A long enough title", "force": "maybe"}, "force"),
    ])
    async def test_is_a_400_naming_the_field(self, make_user: Any, payload: dict[str, Any], field: str) -> None:
        response = await ask(await make_user("customer"), payload)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["field"] == field

    async def test_a_lone_surrogate_is_a_400_not_a_500(self, make_user: Any, client: httpx.AsyncClient) -> None:
        customer = await make_user("customer")
        raw = b'{"title": "A long enough title \\ud800", "body": ""}'  # valid JSON, not storable text
        response = await client.post("/api/v1/questions", content=raw,
                                     headers=customer.headers | {"Content-Type": "application/json"})
        assert response.status_code == 400 and response.json()["error"]["field"] == "title"

    async def test_asking_needs_an_account(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api/v1/questions", json=SAME_PROBLEM)
        assert response.status_code == 401
