"""The support-lead dashboard and its API: summary, trends, CSV export, emergent problems and incidents."""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from supportswarm.accounts import permissions
from supportswarm.accounts.models import User
from supportswarm.httpkit import body_data, login_required, ok, path_id, render
from supportswarm.metrics import charts, emergent, services
from supportswarm.metrics.definitions import COHORT, DEFINITIONS


def _lead(request: Request) -> User:
    user = login_required(request)
    permissions.ensure(permissions.can_see_metrics(user), "the metrics are for support leads and admins")
    return user


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


async def api_summary(request: Request) -> Response:
    _lead(request)
    filters = services.parse_filters(request.query_params)
    return ok(await services.summary(filters, jobs=request.state.jobs))


async def api_trends(request: Request) -> Response:
    _lead(request)
    filters = services.parse_filters(request.query_params)
    bucket = services.parse_bucket(request.query_params.get("bucket"))
    return ok({"bucket": bucket, "points": await services.trends(filters, bucket)})


async def api_export(request: Request) -> Response:
    _lead(request)
    filters = services.parse_filters(request.query_params)
    name = f"supportswarm-questions-{filters.since:%Y%m%d}-{filters.until:%Y%m%d}.csv"
    return StreamingResponse(services.export_rows(filters), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def api_emergent(request: Request) -> Response:
    _lead(request)
    return ok({"clusters": await emergent.list_clusters()})


async def open_incident(request: Request) -> Response:
    user = login_required(request)
    await body_data(request)  # a form post: checks its CSRF token
    incident = await emergent.open_incident(path_id(request), user=user, broker=request.state.broker,
                                            jobs=request.state.jobs)
    if _is_api(request):
        return ok(incident, 201)
    return RedirectResponse(incident["swarm_url"], status_code=303)


async def dismiss_cluster(request: Request) -> Response:
    user = login_required(request)
    await body_data(request)
    await emergent.dismiss(path_id(request), user=user)
    return ok({"dismissed": path_id(request)}) if _is_api(request) else RedirectResponse("/dashboard", 303)


async def dashboard_page(request: Request) -> Response:
    _lead(request)
    filters = services.parse_filters(request.query_params)
    bucket = services.parse_bucket(request.query_params.get("bucket"))
    data = await services.dashboard(filters, bucket, jobs=request.state.jobs)
    return render(request, "metrics/dashboard.html", {
        **data, "filters": filters, "query": filters.query(),
        "since_day": filters.since.date().isoformat(),
        "until_day": (filters.until - timedelta(microseconds=1)).date().isoformat(),
        "charts": charts.dashboard_charts(data["trends"], data["summary"]["backlog"], bucket),
        "definitions": DEFINITIONS, "cohort": COHORT, "responders": services.RESPONDERS,
        "duration": charts.duration, "percent": charts.percent,
        "can_act": permissions.can_open_incident(request.state.user),
    })


routes = [
    Route("/api/v1/metrics/summary", api_summary, methods=["GET"], name="api_metrics_summary"),
    Route("/api/v1/metrics/trends", api_trends, methods=["GET"], name="api_metrics_trends"),
    Route("/api/v1/metrics/export.csv", api_export, methods=["GET"], name="api_metrics_export"),
    Route("/api/v1/metrics/emergent", api_emergent, methods=["GET"], name="api_metrics_emergent"),
    Route("/api/v1/metrics/emergent/{id:int}/incident", open_incident, methods=["POST"], name="api_open_incident"),
    Route("/api/v1/metrics/emergent/{id:int}/dismiss", dismiss_cluster, methods=["POST"], name="api_dismiss_cluster"),
    Route("/dashboard", dashboard_page, methods=["GET"], name="dashboard"),
    Route("/dashboard/emergent/{id:int}/incident", open_incident, methods=["POST"], name="open_incident"),
    Route("/dashboard/emergent/{id:int}/dismiss", dismiss_cluster, methods=["POST"], name="dismiss_cluster"),
]
