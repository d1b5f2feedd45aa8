"""The dashboard and metrics API over HTTP: who may see them, input errors, JSON, CSV and the page."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest

from supportswarm.resources import Resources
from tests.metrics.helpers import T0
from tests.metrics.test_services import build_scenario

Actor = Any  # tests/conftest.py's Actor (make_user's result)
WINDOW = {"since": "2024-03-04T08:00:00Z", "until": "2024-03-11T09:00:00Z"}


@pytest.fixture
async def lead(make_user: Any) -> Actor:
    return await make_user("lena", "lead")


class TestAccess:
    @pytest.mark.parametrize("role", ["customer", "expert", "staff"])
    async def test_others_get_403_json_from_the_api(self, make_user: Any, role: str) -> None:
        someone = await make_user(f"a{role}", role)
        for url in ("/api/v1/metrics/summary", "/api/v1/metrics/export.csv", "/api/v1/metrics/trends",
                    "/api/v1/metrics/emergent"):
            response = await someone.get(url)
            assert response.status_code == 403, url
            assert response.json()["error"]["code"] == "forbidden"

    async def test_others_get_a_readable_403_page(self, make_user: Any) -> None:
        staff = await make_user("sam", "staff")
        response = await staff.get("/dashboard")
        assert response.status_code == 403
        assert "text/html" in response.headers["content-type"]
        assert "metrics are for support leads and admins" in response.text

    async def test_anonymous_is_asked_to_log_in(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/api/v1/metrics/summary")).status_code == 401
        page = await client.get("/dashboard")
        assert page.status_code == 401 and "/login" in page.text

    @pytest.mark.parametrize("role", ["lead", "admin"])
    async def test_leads_and_admins_see_both(self, make_user: Any, role: str) -> None:
        who = await make_user(f"a{role}", role)
        assert (await who.get("/api/v1/metrics/summary")).status_code == 200
        assert (await who.get("/dashboard")).status_code == 200


class TestSummaryApi:
    async def test_matches_the_design_shape_and_the_scenario(self, resources: Resources, lead: Actor) -> None:
        await build_scenario()
        response = await lead.get("/api/v1/metrics/summary", params=WINDOW)
        assert response.status_code == 200
        data = response.json()
        for key in ("questions", "time_to_first_response", "time_to_resolution", "resolution_rate",
                    "deflection_rate", "swarms", "knowledge_reuse"):
            assert key in data
        assert data["questions"] == 6
        assert data["time_to_first_response"] == {"median_s": 120.0, "p90_s": 480.0, "n": 5}
        assert data["time_to_resolution"] == {"median_s": 4300.0, "p90_s": 6540.0, "n": 4}
        assert (data["resolution_rate"], data["deflection_rate"], data["knowledge_reuse"]) == (0.8, 0.25, 3)

    async def test_filters_reach_the_figures(self, resources: Resources, lead: Actor) -> None:
        await build_scenario()
        data = (await lead.get("/api/v1/metrics/summary", params={**WINDOW, "tag": "cards",
                                                                  "responder": "staff"})).json()
        assert data["filters"] == {"tag": "cards", "responder": "staff"}
        assert data["questions"] == 3
        assert data["time_to_first_response"] == {"median_s": 480.0, "p90_s": 816.0, "n": 2}  # q1 60, q3 900

    @pytest.mark.parametrize(("params", "field"), [
        ({"since": "last tuesday"}, "since"),
        ({"until": "2024-02-30"}, "until"),
        ({"since": "2024-03-05", "until": "2024-03-01"}, "since"),
        ({"responder": "robot"}, "responder"),
        ({"tag": "two words"}, "tag"),
    ])
    async def test_bad_values_are_400_naming_the_field(self, lead: Actor, params: dict[str, str], field: str) -> None:
        response = await lead.get("/api/v1/metrics/summary", params=params)
        assert response.status_code == 400
        assert response.json()["error"]["field"] == field

    async def test_trends_api_and_bad_bucket(self, resources: Resources, lead: Actor) -> None:
        await build_scenario()
        data = (await lead.get("/api/v1/metrics/trends", params={**WINDOW, "bucket": "day"})).json()
        assert data["bucket"] == "day" and len(data["points"]) == 8
        assert data["points"][0]["questions"] == 6
        bad = await lead.get("/api/v1/metrics/trends", params={"bucket": "hour"})
        assert bad.status_code == 400 and bad.json()["error"]["field"] == "bucket"


class TestExport:
    async def test_csv_has_one_row_per_question_with_its_facts(self, resources: Resources, lead: Actor) -> None:
        s = await build_scenario()
        response = await lead.get("/api/v1/metrics/export.csv", params=WINDOW)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [int(r["question_id"]) for r in rows] == [s.questions[f"q{i}"].id for i in range(1, 7)]
        q3 = rows[2]
        assert (q3["tags"], q3["first_response_type"]) == ("cards", "community")
        assert q3["seconds_to_first_response"] == "300.0"
        assert (q3["seconds_to_first_staff_or_expert_response"], q3["seconds_to_resolution"]) == ("900.0", "1800.0")
        assert rows[4]["swarm_id"] != "" and rows[5]["duplicate_at"] != ""
        assert rows[3]["resolved_at"] == ""

    async def test_formula_like_titles_are_neutralised(self, resources: Resources, lead: Actor) -> None:
        from tests.metrics.helpers import ask, person

        await ask(await person("mallory"), "=HYPERLINK(\"http://x\") please help", ["cards"], 0)
        rows = list(csv.DictReader(io.StringIO((await lead.get("/api/v1/metrics/export.csv", params=WINDOW)).text)))
        assert rows[0]["title"].startswith("'=HYPERLINK")


class TestDashboardPage:
    async def test_renders_figures_charts_and_definitions(self, resources: Resources, lead: Actor) -> None:
        await build_scenario()
        response = await lead.get("/dashboard", params={"since": "2024-03-04", "until": "2024-03-10"})
        assert response.status_code == 200
        page = response.text
        assert page.count('<svg class="chart"') == 5 and "chart-dot" in page and "chart-bar" in page
        assert "2 min" in page  # the median time to first response, 120 s
        assert "How these figures are defined" in page and "percentile_cont" in page
        assert "style=" not in page and "<script>" not in page  # the CSP forbids inline styles and scripts
        assert f"since={T0:%Y-%m-%d}" in page  # export links keep the filters

    async def test_bad_filter_on_the_page_is_a_readable_400(self, lead: Actor) -> None:
        response = await lead.get("/dashboard", params={"since": "soon"})
        assert response.status_code == 400 and "since must be" in response.text.lower()
