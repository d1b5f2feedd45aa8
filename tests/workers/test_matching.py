"""The embedding jobs: EMBED_QUESTION on ask and edit, EMBED_QUESTIONS for batches; in-process and through a
real arq worker on Redis. The real model, so that "an edit re-embeds" means the meaning moved."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import asyncpg
import numpy as np
import pytest
from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker
from tortoise import connections

from embeddings import Embedder
from supportswarm.accounts import services as accounts
from supportswarm.accounts.models import User
from supportswarm.db import ConnectionParams
from supportswarm.forum import services as forum
from supportswarm.jobs import ArqJobQueue, JobName
from supportswarm.matching import services
from supportswarm.matching.search import question_text
from supportswarm.resources import Resources
from supportswarm.settings import Settings
from tests.conftest import REDIS_URL, Actor
from workers import matching as jobs
from workers.settings import worker_settings

pytestmark = [pytest.mark.model, pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")]


@pytest.fixture
def embedder(real_embedder: Embedder) -> Embedder:
    return real_embedder


async def stored(question_id: int) -> tuple[np.ndarray | None, str | None]:
    rows = await connections.get("default").execute_query_dict(
        "SELECT embedding::real[] AS v, embedding_model FROM questions WHERE id = $1", [question_id])
    vector = rows[0]["v"]
    return (None if vector is None else np.array(vector, dtype=np.float32)), rows[0]["embedding_model"]


async def poster() -> User:
    return await accounts.register("poster", "correct horse battery")


async def test_embed_question_writes_the_vector_and_the_model_name(resources: Resources, embedder: Embedder) -> None:
    question = await forum.create_question(await poster(), "Card declined abroad", "In Lisbon.", [], jobs=None)
    assert await stored(question.id) == (None, None)
    assert await jobs.embed_question({"resources": resources}, question_id=question.id) == 1
    vector, model = await stored(question.id)
    assert model == embedder.name and vector is not None
    expected = embedder.encode([question_text("Card declined abroad", "In Lisbon.")])[0]
    np.testing.assert_allclose(vector, expected, atol=1e-5)
    assert await jobs.embed_question({"resources": resources}, question_id=999_999) == 0, "gone: nothing to do"


async def test_an_edit_reembeds_and_search_follows_the_new_meaning(make_user: Any, resources: Resources,
                                                                   embedder: Embedder) -> None:
    asker: Actor = await make_user("asker")
    user = await User.get(id=asker.user["id"])
    question = await forum.create_question(user, "How do I reset my password?", "", [], jobs=resources.jobs)
    await resources.jobs.drain()
    before, _ = await stored(question.id)
    edited = await asker.patch(f"/api/v1/questions/{question.id}",
                               {"title": "Which currencies can I hold in my account?", "body": "", "tags": []})
    assert edited.status_code == 200, edited.text
    await resources.jobs.drain()
    after, model = await stored(question.id)
    assert before is not None and after is not None and model == embedder.name
    assert float(before @ after) < 0.5, "the vector moved with the text"
    found = await services.find_similar("What currencies does the account support?", embedder=embedder)
    assert found.hits[0].id == question.id and found.hits[0].cosine is not None and found.hits[0].cosine > 0.5


async def test_a_vector_of_text_edited_meanwhile_is_not_written(resources: Resources, embedder: Embedder) -> None:
    user = await poster()
    question = await forum.create_question(user, "Old title about cards", "", [], jobs=None)
    rows = await connections.get("default").execute_query_dict(
        "SELECT id, title, body, updated_at FROM questions WHERE id = $1", [question.id])
    await forum.edit_question(user, question.id, title="New title about loans", body="", tags=[], jobs=None)
    await services.store_vectors(rows, embedder.encode(["Old title about cards"]), embedder.name)
    assert await stored(question.id) == (None, None), "the edit's own job writes the fresh one"


async def test_an_arq_worker_embeds_the_batches(settings: Settings, pg_params: ConnectionParams,
                                                embedder: Embedder) -> None:
    # No app here: the worker opens its own resources (one Tortoise context per process, as in production).
    conn = await asyncpg.connect(pg_params.url())
    try:
        ids = [await conn.fetchval(
            "INSERT INTO questions (title, body, created_at, updated_at, last_activity_at) "
            "VALUES ($1, '', now(), now(), now()) RETURNING id", title)
            for title in ("Card declined abroad", "Top up with a bank transfer", "Close my account")]
        queue = f"arq:test-matching:{uuid.uuid4().hex}"  # a private queue on the shared Redis
        kwargs = worker_settings(replace(settings, redis_url=REDIS_URL), functions=jobs.FUNCTIONS, periodic_jobs=[],
                                 embedder=embedder)
        # One burst per job, in order: the single question's job must find the batch's vectors as neighbours
        # (two jobs in one burst run concurrently, in either order).
        steps: list[tuple[JobName, str | None, dict[str, Any]]] = [
            (JobName.EMBED_QUESTIONS, None, {"question_ids": ids[:2]}),
            (JobName.EMBED_QUESTION, f"embed-question:{ids[2]}:{queue}", {"question_id": ids[2]}),
        ]
        for name, job_id, job in steps:
            queue_jobs = ArqJobQueue(await create_pool(RedisSettings.from_dsn(REDIS_URL), default_queue_name=queue))
            try:
                await queue_jobs.enqueue(name, job_id=job_id, **job)
            finally:
                await queue_jobs.close()
            worker = Worker(**kwargs | {"queue_name": queue}, burst=True, poll_delay=0.01, handle_signals=False)
            try:
                await worker.main()
            finally:
                await worker.close()
            assert (worker.jobs_complete, worker.jobs_failed) == (1, 0)
        models = await conn.fetch("SELECT embedding_model, vector_dims(embedding) AS dims, density FROM questions")
        assert [(r["embedding_model"], r["dims"]) for r in models] == [(embedder.name, 384)] * 3
        assert all(r["density"] is not None for r in models), "the single question's job refreshed its neighbours"
    finally:
        await conn.close()


def test_both_jobs_are_registered() -> None:
    from workers.registry import JOB_FUNCTIONS

    assert JOB_FUNCTIONS[JobName.EMBED_QUESTION] is jobs.embed_question
    assert JOB_FUNCTIONS[JobName.EMBED_QUESTIONS] is jobs.embed_questions
    assert JOB_FUNCTIONS[JobName.REFRESH_DENSITY] is jobs.refresh_density


async def test_the_daily_density_refresh_recomputes_every_question(resources: Resources, embedder: Embedder) -> None:
    user = await poster()
    for title in ("Card declined abroad", "My card was declined in a shop", "Close my account"):
        await forum.create_question(user, title, "", [], jobs=resources.jobs)
    await resources.jobs.drain()
    await connections.get("default").execute_query("UPDATE questions SET density = NULL")
    assert await jobs.refresh_density({"resources": resources}) == 3
    rows = await connections.get("default").execute_query_dict("SELECT density FROM questions")
    assert all(0.0 < r["density"] < 1.0 for r in rows)
    assert any(p.name == JobName.REFRESH_DENSITY and p.every_s == 86400 for p in jobs.PERIODIC)
