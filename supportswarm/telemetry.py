"""Prometheus metric objects, in one place so any module can count without importing the web layer.

Only metric definitions live here (no project imports), e.g. `telemetry.WS_OPEN.inc()`. Every process
(`serve` replica, `worker`) has its own registry, exposed at `/metrics` on each replica and on the
worker's `--metrics-port`; Prometheus scrapes each process and sums across them. Labels are bounded:
route templates and job names, never raw paths or ids.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Web latencies from ~1 ms (a cached page) to 10 s (the slowest thing we tolerate before a timeout).
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Jobs and embedding batches range from milliseconds (one question) to minutes (a bulk batch).
_WORK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

REQUEST_LATENCY = Histogram(
    "supportswarm_http_request_duration_seconds",
    "HTTP request latency, by route template (not raw path), method and status.",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
)
WS_OPEN = Gauge("supportswarm_websockets_open", "Websocket connections open on this process.")
MESSAGES = Counter("supportswarm_swarm_messages_total", "Swarm room messages stored.")
JOBS = Counter(
    "supportswarm_jobs_total",
    "Background jobs run by this process, by job name and outcome (ok, retry, failed).",
    ["job", "outcome"],
)
JOB_DURATION = Histogram(
    "supportswarm_job_duration_seconds", "Time a job function ran.", ["job"], buckets=_WORK_BUCKETS
)
JOBS_ENQUEUED = Counter("supportswarm_jobs_enqueued_total", "Jobs handed to the job queue, by job name.", ["job"])
EMBED_SECONDS = Histogram(
    "supportswarm_embedding_seconds", "Time to encode one batch of texts with the embedding model.",
    buckets=_WORK_BUCKETS,
)
EMBEDDED_TEXTS = Counter("supportswarm_embedded_texts_total", "Texts encoded by the embedding model.")
EMBED_MODEL_LOADED = Gauge("supportswarm_embedding_model_loaded", "1 once this process has loaded the embedding model.")
DB_UNAVAILABLE = Counter(
    "supportswarm_database_unavailable_total", "Requests answered 503 because the database was unreachable."
)
