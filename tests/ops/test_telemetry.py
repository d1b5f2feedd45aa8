"""Prometheus /metrics (latency by route template, websockets, messages, jobs, embedding time) and JSON logs."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from embeddings import HashingEmbedder
from supportswarm.accounts import services as accounts
from supportswarm.forum import services as forum
from supportswarm.ops import JsonFormatter, configure_logging
from supportswarm.resources import LazyEmbedder, Resources
from supportswarm.settings import Settings
from tests.conftest import Actor

LATENCY = "supportswarm_http_request_duration_seconds"


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _requests(route: str, method: str = "GET", status: str = "200") -> float:
    return _sample(f"{LATENCY}_count", method=method, route=route, status=status)


async def test_metrics_endpoint_exposes_latency_by_route_template(client: httpx.AsyncClient, make_user: Any) -> None:
    asker: Actor = await make_user("asker")
    staff: Actor = await make_user("sam", role="staff")
    user = await accounts.get_user_by_name("asker")
    q = await forum.create_question(user, "Card declined at the shop", "Twice today.", ["cards"], jobs=None)
    page, api = "/questions/{id:int}", "/api/v1/questions/{id:int}"
    before = [_requests(page), _requests(api), _requests("/api/v1/questions/{id:int}/answers", "POST", "201"),
              _requests("<unmatched>", status="404")]
    for _ in range(2):
        assert (await client.get(f"/questions/{q.id}")).status_code == 200
    assert (await asker.get(f"/api/v1/questions/{q.id}")).status_code == 200
    # One endpoint serves both the API and the form route: the label must name the route that matched.
    answered = await staff.post(f"/api/v1/questions/{q.id}/answers", {"body": "Use chip and PIN once."})
    assert answered.status_code == 201
    assert (await client.get("/no/such/page")).status_code == 404

    response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    after = [_requests(page), _requests(api), _requests("/api/v1/questions/{id:int}/answers", "POST", "201"),
             _requests("<unmatched>", status="404")]
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 1, 1, 1]
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    routes = {s.labels["route"] for s in families[LATENCY].samples}
    assert page in routes and not any(f"/questions/{q.id}" in route for route in routes)  # templates, not paths
    for name in ("supportswarm_websockets_open", "supportswarm_swarm_messages", "supportswarm_jobs",
                 "supportswarm_job_duration_seconds", "supportswarm_embedding_seconds"):
        assert name in families, name


async def test_in_process_jobs_are_counted(resources: Resources, make_user: Any) -> None:
    res = resources
    await make_user("asker")
    user = await accounts.get_user_by_name("asker")
    before = _sample("supportswarm_jobs_total", job="embed_question", outcome="ok")
    await forum.create_question(user, "Transfer pending for two days", "Since Monday.", ["transfers"], jobs=res.jobs)
    await res.jobs.drain()
    assert _sample("supportswarm_jobs_total", job="embed_question", outcome="ok") == before + 1
    assert _sample("supportswarm_jobs_enqueued_total", job="embed_question") >= 1


def test_embedding_time_is_observed(settings: Settings) -> None:
    embedder = LazyEmbedder(settings)
    embedder._model = HashingEmbedder()  # the timing wrapper is under test, not the model
    count, texts = _sample("supportswarm_embedding_seconds_count"), _sample("supportswarm_embedded_texts_total")
    assert embedder.encode(["one", "two", "three"]).shape[0] == 3
    assert _sample("supportswarm_embedding_seconds_count") == count + 1
    assert _sample("supportswarm_embedded_texts_total") == texts + 3


# --- JSON logs ----------------------------------------------------------------------------------------


def test_json_formatter_writes_one_object_with_extras_and_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("supportswarm.test", logging.ERROR, __file__, 1, "job %s failed", ("x",),
                                   sys.exc_info())
    record.swarm_id = 7
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert (entry["level"], entry["logger"], entry["message"], entry["swarm_id"]) == (
        "error", "supportswarm.test", "job x failed", 7)
    assert entry["ts"].endswith("+00:00") and "ValueError: boom" in entry["exc"]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.captureWarnings(False)


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_json_on_request(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    configure_logging(Settings(json_logs=True, data_dir=tmp_path))
    logging.getLogger("supportswarm.ops").warning("redis unreachable", extra={"retry_in": 2})
    entry = json.loads(capsys.readouterr().err.strip())
    assert (entry["message"], entry["level"], entry["retry_in"]) == ("redis unreachable", "warning", 2)
    configure_logging(Settings(json_logs=False, data_dir=tmp_path))
    logging.getLogger("supportswarm.ops").warning("plain again")
    assert capsys.readouterr().err.rstrip().endswith("WARNING supportswarm.ops: plain again")


async def test_methods_clients_make_up_share_one_label(client: httpx.AsyncClient) -> None:
    before = _requests("/healthz", method="other", status="405")
    assert (await client.request("BREW", "/healthz")).status_code == 405
    assert _requests("/healthz", method="other", status="405") == before + 1
    assert REGISTRY.get_sample_value(f"{LATENCY}_count", {"method": "BREW", "route": "/healthz",
                                                          "status": "405"}) is None
