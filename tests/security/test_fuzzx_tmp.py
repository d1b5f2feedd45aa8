"""Fuzzing the JSON API with its own OpenAPI document (schemathesis, in process, bounded examples).

Every operation of /openapi.json gets valid (positive) and invalid (negative) requests from Hypothesis,
sent as an admin with a bearer token (so validation behind every permission check is reached) to an app
seeded with a few objects (so small ids exist). Two checks: no 5xx, and every answer matches the schema
the document declares for its status. Deterministic (derandomised) so a CI failure reproduces.

The app runs in schemathesis' own event-loop thread (its ASGI client); the seed data is written before
the app starts, in a loop of its own, and the app's lifespan is shut down at the end.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
import schemathesis
import schemathesis.checks
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis.core.result import Ok
from schemathesis.python import asgi
from starlette.routing import Route

from embeddings import HashingEmbedder
from supportswarm.accounts import services as accounts
from supportswarm.app import create_app
from supportswarm.forum import services as forum
from supportswarm.matching import routing
from supportswarm.metrics import emergent
from supportswarm.metrics.emergent import EmergentConfig
from supportswarm.openapi import document
from supportswarm.resources import open_resources
from supportswarm.settings import Settings
from supportswarm.swarm import services as swarms
from supportswarm.webhooks import services as webhooks
from tests.security.scene import NoJobs
from workers.registry import JOB_FUNCTIONS

pytestmark = pytest.mark.timeout(240)
MAX_EXAMPLES = 60
DOCUMENTED_PREFIXES = ("/api/",)
DOCUMENTED_EXTRA = {"/healthz", "/readyz"}


def _doc_path(path: str) -> str:
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


def test_the_document_describes_every_api_route_and_nothing_else(settings: Settings) -> None:
    app = create_app(settings)
    served = {(method.lower(), _doc_path(route.path)) for route in app.routes if isinstance(route, Route)
              and (route.path.startswith(DOCUMENTED_PREFIXES) or route.path in DOCUMENTED_EXTRA)
              for method in route.methods or () if method != "HEAD"}
    described = {(method, path) for path, ops in document()["paths"].items() for method in ops}
    assert sorted(served - described) == [], "API routes missing from supportswarm/openapi.py"
    assert sorted(described - served) == [], "operations in supportswarm/openapi.py the app does not serve"


def test_every_operation_documents_errors_and_bodies(settings: Settings) -> None:
    for path, ops in document()["paths"].items():
        for method, spec in ops.items():
            codes = set(spec["responses"])
            assert any(c.startswith("2") for c in codes), (method, path)
            if path.startswith("/api/"):
                assert codes & {"400", "401", "403", "404"}, (method, path, "no error answer documented")
            if "requestBody" in spec:
                schema = spec["requestBody"]["content"]["application/json"]["schema"]
                assert schema["type"] == "object" and schema["properties"], (method, path)


async def _seed(settings: Settings) -> str:
    """An admin with a token, and objects with small ids of every kind, written before the app starts."""
    async with open_resources(settings, job_functions=JOB_FUNCTIONS, embedder=HashingEmbedder()) as res:
        admin = await accounts.register("fuzzer", "correct horse battery", role="admin")
        asker = await accounts.register("asker", "correct horse battery")
        await webhooks.create_webhook(admin, "http://127.0.0.1:9/hook")  # first: the events below get deliveries
        for i in range(3):
            q = await forum.create_question(asker, f"Seeded question number {i}", "body", ["seed"], jobs=res.jobs)
            answer = await forum.post_answer(admin, q.id, "A seeded answer.")
            await forum.post_comment(admin, "seeded comment", answer_id=answer.id)
        await forum.accept_answer(asker, answer.id)
        for _ in range(2):  # a burst: an emergent cluster
            await forum.create_question(asker, "Payment page spins forever", "same", [], jobs=res.jobs)
        await swarms.open_swarm(q.id, opened_by=asker, reason="manual", broker=res.broker, jobs=res.jobs)
        await res.jobs.drain()
        await emergent.detect(config=EmergentConfig(min_size=2))
        await webhooks.dispatch_events(jobs=NoJobs())
        await routing.ask_question(asker, routing.Draft(title="Seeded question number 2", body="body", tags=[]),
                                   policy=routing.AskPolicy(answer_threshold=0.0), embedder=res.embedder,
                                   broker=res.broker, jobs=res.jobs)
        return await accounts.create_token(admin)


def _fuzz(operation: Any, mode: schemathesis.GenerationMode, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    strategy = operation.as_strategy(generation_mode=mode, headers=auth)
    if "{id}" in operation.path:  # half the cases on seeded objects, or nearly every answer is a 404
        seeded = st.sampled_from([1, 2, 3]).flatmap(
            lambda i: operation.as_strategy(generation_mode=mode, headers=auth, path_parameters={"id": i}))
        strategy = st.one_of(strategy, seeded)
    checks = [schemathesis.checks.not_a_server_error, schemathesis.checks.response_schema_conformance]

    @given(case=strategy)
    @hypothesis_settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=False,
                         phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        response = case.call()
        case.validate_response(response, checks=checks)

    run()


def test_no_server_errors_and_answers_match_the_schema(settings: Settings) -> None:
    token = asyncio.run(_seed(settings))
    app = create_app(settings, job_functions=JOB_FUNCTIONS, embedder=HashingEmbedder())
    failures = []
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), f"the document does not load: {result}"
            operation = result.ok()
            spec = document()["paths"][operation.path][operation.method.lower()]
            modes = [schemathesis.GenerationMode.POSITIVE]
            if "parameters" in spec or "requestBody" in spec:  # nothing to get wrong without inputs
                modes.append(schemathesis.GenerationMode.NEGATIVE)
            for mode in modes:
                try:
                    _fuzz(operation, mode, token)
                except Exception as exc:  # one operation's failure must not hide the others'
                    failures.append(f"{operation.label} [{mode}]: {str(exc)[:1500]}")
    finally:
        asgi.shutdown_lifespans()
    assert failures == [], "\n\n".join(failures)
