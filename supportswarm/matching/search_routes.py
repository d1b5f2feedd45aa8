"""Site search HTTP: GET /api/v1/search and the /search page (the search box in every page's header)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from supportswarm import validation
from supportswarm.errors import InvalidInput
from supportswarm.httpkit import ok, render, user_of
from supportswarm.matching import site_search
from supportswarm.matching.routes import strict_query_param
from supportswarm.settings import Settings


async def _search(request: Request, q: str) -> site_search.Found:
    params = request.query_params
    page = validation.integer(params.get("page"), "page", default=1, lo=1, hi=site_search.MAX_PAGE)
    settings: Settings = request.app.state.settings
    return await site_search.search(q, page=page, status=params.get("status") or None, tag=params.get("tag") or None,
                                    viewer=user_of(request), embedder=request.state.embedder,
                                    expert_reputation=settings.expert_reputation)


def _q(request: Request) -> str:
    return validation.text({"q": strict_query_param(request, "q")}, "q", max_len=site_search.Q_MAX)


def _server_timing(response: Response, found: site_search.Found) -> Response:
    response.headers["Server-Timing"] = ", ".join(f"{k};dur={1000 * v:.2f}" for k, v in found.timings.items())
    return response


async def api_search(request: Request) -> Response:
    found = await _search(request, _q(request))
    return _server_timing(ok(site_search.results_json(found)), found)


async def search_page(request: Request) -> Response:
    raw = request.query_params.get("q", "")
    context = {"q": raw, "status": request.query_params.get("status") or None,
               "tag": request.query_params.get("tag") or None, "found": None, "error": None, "pages": 0}
    if not raw.strip():  # the bare page: only the search box
        return render(request, "matching/search.html", context)
    try:
        found = await _search(request, _q(request))
    except InvalidInput as exc:
        return render(request, "matching/search.html", context | {"error": exc}, status=400)
    pages = min(site_search.MAX_PAGE, -(-found.total // site_search.PAGE_SIZE))
    return _server_timing(render(request, "matching/search.html", context | {"found": found, "pages": pages}), found)


routes = [
    Route("/api/v1/search", api_search, methods=["GET"], name="api_search"),
    Route("/search", search_page, methods=["GET"], name="search"),
]
