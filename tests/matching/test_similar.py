"""GET /api/v1/similar with the real model: paraphrases find their question, unrelated text is 'ask',
visibility rules hold, and bad input is a clear 400."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tortoise import connections, timezone

from embeddings import Embedder
from supportswarm.forum.models import Question
from supportswarm.matching import services
from tests.matching.conftest import Answered, Forum


@pytest.fixture
def embedder(real_embedder: Embedder) -> Embedder:
    return real_embedder


@pytest.fixture
async def faq(forum_content: Forum) -> dict[str, Answered]:
    """A small answered forum: four questions, four embeddings."""
    items = {
        "declined": await forum_content.answered(
            "My card payment was declined at the supermarket",
            "Check that the card is not frozen in the app, then try the chip instead of contactless.",
            tags=["cards"], external_id="kb-17"),
        "password": await forum_content.answered(
            "How do I reset my password?", "Use 'Forgot password' on the login page; the link is valid for 1 hour."),
        "transfer": await forum_content.answered(
            "How long does an international transfer take?", "Usually one to three business days."),
        "pin": await forum_content.answered("Can I change the PIN of my card?", "Yes: Cards > PIN > Change PIN."),
    }
    await forum_content.settle()
    return items


async def similar(client: httpx.AsyncClient, q: str, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/similar", params={"q": q, **params})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


@pytest.mark.model
class TestRanking:
    @pytest.mark.parametrize(("paraphrase", "expected"), [
        ("I forgot my password, how can I get back into my account?", "password"),
        ("Why was my card refused when I paid in a shop?", "declined"),
        ("When will my money sent abroad arrive?", "transfer"),
    ])
    async def test_a_paraphrase_finds_its_question_first(self, client: httpx.AsyncClient, faq: dict[str, Answered],
                                                         paraphrase: str, expected: str) -> None:
        data = await similar(client, paraphrase)
        assert data["results"][0]["id"] == faq[expected].question_id
        assert data["results"][0]["accepted_answer_id"] == faq[expected].answer_id

    async def test_the_reply_has_the_documented_shape(self, client: httpx.AsyncClient,
                                                      faq: dict[str, Answered]) -> None:
        data = await similar(client, "card declined in a supermarket", limit=2)
        assert data["decision"] in {"answer", "ask"}
        assert len(data["results"]) == 2
        first = data["results"][0]
        assert {"id", "external_id", "title", "score", "accepted_answer_id"} <= set(first)
        assert first["external_id"] == "kb-17" and first["title"] == "My card payment was declined at the supermarket"
        assert first["answer_excerpt"].startswith("Check that the card is not frozen")
        scores = [r["score"] for r in data["results"]]
        assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)

    async def test_the_reply_says_where_the_time_went(self, client: httpx.AsyncClient,
                                                      faq: dict[str, Answered]) -> None:
        response = await client.get("/api/v1/similar", params={"q": "card declined"})
        timing = response.headers["server-timing"]
        assert [part.split(";")[0].strip() for part in timing.split(",")] == ["embed", "text", "vector"]

    async def test_a_close_paraphrase_of_a_solved_question_is_answered(self, client: httpx.AsyncClient,
                                                                       faq: dict[str, Answered]) -> None:
        data = await similar(client, "How can I reset my password?")
        assert data["decision"] == "answer"
        assert data["results"][0]["id"] == faq["password"].question_id

    @pytest.mark.parametrize("unrelated", [
        "What is the best recipe for a chocolate cake?",
        "Which football team won the league last year?",
    ])
    async def test_an_unrelated_question_gets_ask(self, client: httpx.AsyncClient, faq: dict[str, Answered],
                                                  unrelated: str) -> None:
        assert (await similar(client, unrelated))["decision"] == "ask"

    async def test_an_open_question_is_found_but_never_offered(self, client: httpx.AsyncClient,
                                                               forum_content: Forum) -> None:
        open_id = await forum_content.question("How do I reset my password?")
        await forum_content.settle()
        data = await similar(client, "How do I reset my password?")
        assert data["results"][0]["id"] == open_id and data["results"][0]["accepted_answer_id"] is None
        assert data["decision"] == "ask"


@pytest.mark.model
class TestVisibility:
    async def test_duplicates_are_left_out(self, client: httpx.AsyncClient, faq: dict[str, Answered],
                                           forum_content: Forum) -> None:
        from supportswarm.forum import services as forum

        copy = await forum_content.question("How do I reset my password please?")
        await forum_content.settle()
        await forum.mark_duplicate(await forum_content.user("mod", "staff"), copy, faq["password"].question_id)
        ids = [r["id"] for r in (await similar(client, "reset my password", limit=10))["results"]]
        assert copy not in ids and faq["password"].question_id in ids

    async def test_hidden_questions_and_answers_are_never_offered(self, client: httpx.AsyncClient,
                                                                  faq: dict[str, Answered]) -> None:
        from supportswarm.forum.models import Answer

        query = "I forgot my password, how can I get back into my account?"
        assert (await similar(client, query))["decision"] == "answer"
        await Answer.filter(id=faq["password"].answer_id).update(hidden_at=timezone.now())
        data = await similar(client, query, limit=10)
        listed = {r["id"]: r for r in data["results"]}
        assert listed[faq["password"].question_id]["accepted_answer_id"] is None, "a hidden answer is no solution"
        assert data["decision"] == "ask"
        await Question.filter(id=faq["password"].question_id).update(hidden_at=timezone.now())
        ids = [r["id"] for r in (await similar(client, query, limit=10))["results"]]
        assert faq["password"].question_id not in ids

    async def test_vectors_of_another_model_are_never_compared(self, faq: dict[str, Answered],
                                                               embedder: Embedder) -> None:
        await Question.filter(id=faq["transfer"].question_id).update(embedding_model="some-other-model@1")
        found = await services.find_similar("When will my money sent abroad arrive?", limit=10, embedder=embedder)
        assert found.hits and found.hits[0].id != faq["transfer"].question_id
        assert all(h.cosine is None for h in found.hits if h.id == faq["transfer"].question_id)
        assert await services.count_stale(embedder.name) == 1, "reindex will pick it up"

    async def test_a_new_question_is_searchable_by_text_before_its_vector_exists(
        self, client: httpx.AsyncClient, forum_content: Forum, faq: dict[str, Answered]
    ) -> None:
        from supportswarm.forum import services as forum

        fresh = await forum.create_question(await forum_content.user("poster"), "Overdraft fee charged twice",
                                            "", [], jobs=None)  # no embedding job: text only
        data = await similar(client, "overdraft fee", limit=10)
        assert fresh.id in [r["id"] for r in data["results"]] and data["decision"] == "ask"


class TestBadInput:
    @pytest.mark.parametrize(("query", "field"), [
        ("", "q"),
        ("q=", "q"),
        ("q=%20%20", "q"),
        ("q=" + "a" * 10_000, "q"),
        ("q=%FF%FEcard", "q"),
        ("q=card%00x", "q"),
        ("q=card&limit=0", "limit"),
        ("q=card&limit=51", "limit"),
        ("q=card&limit=ten", "limit"),
    ])
    async def test_is_a_400_naming_the_field(self, client: httpx.AsyncClient, query: str, field: str) -> None:
        response = await client.get(f"/api/v1/similar?{query}")
        assert response.status_code == 400, response.text
        assert response.json()["error"]["field"] == field

    async def test_an_empty_forum_answers_ask_with_no_results(self, client: httpx.AsyncClient) -> None:
        assert await similar(client, "anything at all") == {"decision": "ask", "results": []}

    async def test_limit_is_honoured(self, client: httpx.AsyncClient, forum_content: Forum) -> None:
        for i in range(4):
            await forum_content.question(f"Question number {i} about cards")
        await forum_content.settle()
        assert len((await similar(client, "cards", limit=3))["results"]) == 3


async def test_vectors_are_written_with_their_model_name(faq: dict[str, Answered], embedder: Embedder) -> None:
    rows = await connections.get("default").execute_query_dict(
        "SELECT embedding_model, vector_dims(embedding) AS dims FROM questions")
    assert rows and all(r["embedding_model"] == embedder.name and r["dims"] == 384 for r in rows)
