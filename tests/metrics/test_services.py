"""Metrics from a scenario with fixed timestamps: every median, p90 and rate is worked out by hand below.

percentile_cont(f) over n sorted values takes position f*(n-1) and interpolates linearly, e.g. the
p90 of [30, 60, 120, 300, 600] sits at 3.6: 300 + 0.6 * (600 - 300) = 480.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from supportswarm.db import ConnectionParams
from supportswarm.errors import InvalidInput
from supportswarm.forum.models import Question
from supportswarm.metrics import rollup, services
from supportswarm.metrics.events import EventKind, record_event
from supportswarm.metrics.services import Filters
from supportswarm.resources import Resources
from tests.metrics.helpers import T0, answer, ask, at, person, resolve, respond, swarm_for

WINDOW = Filters(since=T0 - timedelta(hours=1), until=T0 + timedelta(days=7))
BEFORE = -2 * 86400  # two days before T0: outside every window below


@dataclass
class Scenario:
    questions: dict[str, Question]
    ids: dict[str, int]  # user ids by name


async def build_scenario() -> Scenario:
    """Six questions asked in the window, one before it; see the module docstring for the arithmetic."""
    dana, sofia, tom = await person("dana", "staff"), await person("sofia", "expert"), await person("tom")
    askers = [await person(f"asker{i}") for i in range(1, 8)]
    q1 = await ask(askers[0], "Card not arrived after two weeks", ["cards"], 0)
    q2 = await ask(askers[1], "Card declined at the shop today", ["cards"], 600)
    q3 = await ask(askers[2], "How do I activate my new card", ["cards"], 1200)
    q4 = await ask(askers[3], "Why was I charged a transfer fee", ["fees"], 1800)
    q5 = await ask(askers[4], "Monthly fee charged twice this month", ["fees"], 2400)
    q6 = await ask(askers[5], "Fee for a transfer abroad, how much", ["fees"], 3000)
    q7 = await ask(askers[6], "Old question from before the window", ["fees"], BEFORE)

    await respond(q1, dana, 60, first=True)  # ttfr 60 (staff)
    await respond(q2, sofia, 600 + 120, first=True)  # ttfr 120 (expert)
    await respond(q3, tom, 1200 + 300, EventKind.COMMENT_POSTED, first=True)  # ttfr 300 (community)
    await respond(q3, dana, 1200 + 900)  # first staff response 900
    await respond(q4, askers[3], 1800 + 10)  # the asker's own answer is not a response
    await respond(q4, dana, 1800 + 600, first=True)  # ttfr 600 (staff)
    await respond(q5, askers[4], 2400 + 50, EventKind.COMMENT_POSTED)  # asker again: q5 gets no response
    await respond(q6, tom, 3000 + 30, first=True)  # ttfr 30 (community)
    await respond(q7, dana, BEFORE + 5, first=True)  # outside the window

    solution = await answer(q1, dana, 60)
    await record_event(EventKind.ANSWER_ACCEPTED, actor_id=askers[0].id, question_id=q1.id, answer_id=solution.id,
                       at=at(3600))
    await resolve(q1, askers[0], 3600, solution.id)  # ttr 3600
    await resolve(q2, askers[1], 600 + 7200)  # ttr 7200
    await resolve(q3, askers[2], 1200 + 1800)  # ttr 1800
    await record_event(EventKind.DUPLICATE_LINKED, actor_id=dana.id, question_id=q6.id, at=at(3000 + 40),
                       original_id=q4.id)

    swarm = await swarm_for(q5, 2400 + 100)
    for who, offset in ((askers[4], 110), (sofia, 400), (dana, 700)):  # the asker's join does not count for ttj
        await record_event(EventKind.SWARM_JOINED, actor_id=who.id, question_id=q5.id, swarm_id=swarm.id,
                           at=at(2400 + offset))
    await record_event(EventKind.SWARM_RESOLVED, actor_id=dana.id, question_id=q5.id, swarm_id=swarm.id,
                       at=at(2400 + 5000))  # ttr 5000, swarm duration 4900

    for seconds in (4000, 5000, BEFORE):  # two deflections in the window, one before it
        await record_event(EventKind.SUGGESTION_ACCEPTED, actor_id=askers[6].id, answer_id=solution.id,
                           at=at(seconds), suggested_question_id=q1.id, suggested_answer_id=solution.id)
    for seconds in (4100, 5100, 6100):
        await record_event(EventKind.ANSWER_REUSED, answer_id=solution.id, at=at(seconds))
    qs = {"q1": q1, "q2": q2, "q3": q3, "q4": q4, "q5": q5, "q6": q6, "q7": q7}
    return Scenario(qs, {"dana": dana.id, "sofia": sofia.id, "tom": tom.id})


@pytest.fixture
async def scenario(resources: Resources) -> Scenario:
    return await build_scenario()


def spread(data: dict[str, Any], key: str) -> tuple[Any, Any, Any]:
    return data[key]["median_s"], data[key]["p90_s"], data[key]["n"]


class TestSummary:
    async def test_whole_window_gives_the_worked_out_figures(self, scenario: Scenario) -> None:
        s = await services.summary(WINDOW)
        assert s["questions"] == 6
        assert spread(s, "time_to_first_response") == (120.0, 480.0, 5)
        assert spread(s, "time_to_first_staff_or_expert_response") == (360.0, 810.0, 4)
        assert spread(s, "time_to_resolution") == (4300.0, 6540.0, 4)
        assert (s["resolution_rate"], s["resolved"], s["duplicates"]) == (0.8, 4, 1)
        assert (s["asks"], s["deflected"], s["deflection_rate"]) == (8, 2, 0.25)
        assert s["swarm_rate"] == round(1 / 6, 4)
        assert s["knowledge_reuse"] == 3

    async def test_swarm_figures(self, scenario: Scenario) -> None:
        swarms = (await services.summary(WINDOW))["swarms"]
        assert (swarms["opened"], swarms["resolved"], swarms["incidents"]) == (1, 1, 0)
        assert swarms["time_to_join"] == {"median_s": 300.0, "p90_s": 300.0, "n": 1}
        assert swarms["size"] == {"median": 3.0, "p90": 3.0, "n": 1}
        assert swarms["duration"] == {"median_s": 4900.0, "p90_s": 4900.0, "n": 1}

    @pytest.mark.parametrize(("responder", "expected"), [
        ("staff", (600.0, 840.0, 3)),
        ("expert", (120.0, 120.0, 1)),
        ("community", (165.0, 273.0, 2)),
    ])
    async def test_responder_filter_times_the_first_response_of_that_type(
        self, scenario: Scenario, responder: str, expected: tuple[float, float, int]
    ) -> None:
        s = await services.summary(Filters(since=WINDOW.since, until=WINDOW.until, responder=responder))
        assert spread(s, "time_to_first_response") == expected
        assert s["questions"] == 6

    async def test_tag_filter_counts_deflections_under_the_suggested_questions_tags(self, scenario: Scenario) -> None:
        s = await services.summary(Filters(since=WINDOW.since, until=WINDOW.until, tag="cards"))
        assert s["questions"] == 3
        assert spread(s, "time_to_first_response") == (120.0, 264.0, 3)
        assert (s["resolution_rate"], s["deflected"], s["deflection_rate"], s["knowledge_reuse"]) == (1.0, 2, 0.4, 3)
        fees = await services.summary(Filters(since=WINDOW.since, until=WINDOW.until, tag="fees"))
        assert (fees["questions"], fees["deflected"], fees["knowledge_reuse"], fees["swarms"]["opened"]) == (3, 0, 0, 1)

    async def test_backlog_counts_unresolved_questions_by_age_at_until(self, scenario: Scenario) -> None:
        b = await services.backlog(WINDOW)
        assert b["total"] == 2  # q4 (asked 7 d - 30 min before until) and q7 (asked before the window)
        counts = {bucket["label"]: bucket["count"] for bucket in b["by_age"]}
        assert counts == {"< 1 h": 0, "1–4 h": 0, "4–24 h": 0, "1–3 d": 0, "3–7 d": 1, "> 7 d": 1}
        early = await services.backlog(Filters(since=WINDOW.since, until=at(3000 + 60)))
        # 20 s after q6's duplicate closure: q3 (resolved at 3000) and q6 are closed; q1, q2, q4, q5, q7 wait.
        assert early["total"] == 5
        assert early["by_age"][0]["count"] == 4 and early["by_age"][-1]["count"] == 0

    async def test_top_contributors_rank_by_customers_helped(self, scenario: Scenario) -> None:
        people = (await services.summary(WINDOW))["top_contributors"]
        ranked = [(p["username"], p["helped"], p["solutions"], p["reuses"], p["swarms_resolved"], p["first_responses"])
                  for p in people]
        assert ranked == [("dana", 5, 1, 3, 1, 2), ("sofia", 1, 0, 0, 1, 1), ("tom", 0, 0, 0, 0, 2)]
        staff_only = await services.top_contributors(Filters(since=WINDOW.since, until=WINDOW.until,
                                                             responder="staff"))
        assert [p["username"] for p in staff_only] == ["dana"]

    async def test_empty_window_gives_nulls_not_zeros(self, resources: Resources) -> None:
        s = await services.summary(WINDOW)
        assert s["questions"] == 0
        assert s["resolution_rate"] is None and s["deflection_rate"] is None
        assert spread(s, "time_to_first_response") == (None, None, 0)


class TestRollup:
    async def test_folded_facts_answer_exactly_as_the_live_tail(self, scenario: Scenario) -> None:
        before = await services.summary(WINDOW)
        assert await rollup.tail_size() > 0
        result = await rollup.rollup()
        assert result.ran and result.questions == 7 and result.swarms == 1
        assert await rollup.tail_size() == 0
        assert await services.summary(WINDOW) == before

    async def test_new_events_after_a_rollup_are_seen_at_once(self, scenario: Scenario) -> None:
        await rollup.rollup()
        await resolve(scenario.questions["q4"], None, 1800 + 900)
        s = await services.summary(WINDOW)
        assert (s["resolved"], s["resolution_rate"]) == (5, 1.0)
        assert spread(s, "time_to_resolution")[2] == 5

    async def test_event_committed_after_a_later_one_is_not_skipped(
        self, resources: Resources, pg_params: ConnectionParams
    ) -> None:
        """Event ids are taken at insert, seen at commit: the late committer must still be folded."""
        user = await person("early")
        q = await ask(user, "A question for the commit-order test", ["cards"], 0)
        slow = await asyncpg.connect(pg_params.url())
        try:
            tx = slow.transaction()
            await tx.start()
            await slow.execute("INSERT INTO events (kind, at, question_id) VALUES ('question_resolved', $1, $2)",
                               at(50), q.id)
            await record_event(EventKind.COMMENT_POSTED, actor_id=(await person("helper")).id, question_id=q.id,
                               at=at(20))
            # The open transaction holds the watermark below itself: the comment, newer, stays in the tail too.
            await rollup.rollup()
            await tx.commit()
        finally:
            await slow.close()
        await rollup.rollup()
        assert await rollup.tail_size() == 0
        s = await services.summary(WINDOW)
        assert spread(s, "time_to_resolution") == (50.0, 50.0, 1)
        assert spread(s, "time_to_first_response") == (20.0, 20.0, 1)


class TestTrends:
    async def test_days_carry_their_own_cohort(self, scenario: Scenario) -> None:
        days = await services.trends(Filters(since=T0 - timedelta(days=1), until=T0 + timedelta(days=2)), "day")
        # Partial first and last days are buckets too (the window ends at 09:00 on the 6th).
        assert [d["start"][:10] for d in days] == ["2024-03-03", "2024-03-04", "2024-03-05", "2024-03-06"]
        assert [d["questions"] for d in days] == [0, 6, 0, 0]
        monday = days[1]
        assert monday["time_to_first_response"] == {"median_s": 120.0, "p90_s": 480.0, "n": 5}
        assert (monday["deflected"], monday["deflection_rate"], monday["resolution_rate"]) == (2, 0.25, 0.8)
        assert days[2]["resolution_rate"] is None

    async def test_weeks_start_on_monday(self, scenario: Scenario) -> None:
        weeks = await services.trends(Filters(since=T0 + timedelta(days=2), until=T0 + timedelta(days=9)), "week")
        assert [w["start"][:10] for w in weeks] == ["2024-03-04", "2024-03-11"]
        assert weeks[0]["questions"] == 0  # the cohort is filtered by the window, not widened to the bucket


class TestFilters:
    def test_defaults_to_the_last_30_days(self) -> None:
        f = services.parse_filters({}, now=T0)
        assert (f.since, f.until, f.tag, f.responder) == (T0 - timedelta(days=30), T0, None, None)

    def test_dates_and_zones_are_read_as_utc(self) -> None:
        f = services.parse_filters({"since": "2024-03-01", "until": "2024-03-02T12:00:00+02:00"})
        assert f.since.isoformat() == "2024-03-01T00:00:00+00:00"
        assert f.until.isoformat() == "2024-03-02T10:00:00+00:00"

    def test_a_bare_until_date_includes_that_day(self) -> None:
        f = services.parse_filters({"since": "2024-03-01", "until": "2024-03-01"})
        assert (f.since.isoformat(), f.until.isoformat()) == ("2024-03-01T00:00:00+00:00", "2024-03-02T00:00:00+00:00")

    @pytest.mark.parametrize(("params", "field"), [
        ({"since": "yesterday"}, "since"),
        ({"until": "2024-13-01"}, "until"),
        ({"since": "2024-03-03", "until": "2024-03-01"}, "since"),
        ({"tag": "Not A Tag!"}, "tag"),
        ({"responder": "bots"}, "responder"),
        ({"until": "9999-12-31"}, "until"),
        ({"until": "0001-01-02"}, "until"),
    ])
    def test_bad_values_name_their_field(self, params: dict[str, str], field: str) -> None:
        with pytest.raises(InvalidInput) as caught:
            services.parse_filters(params)
        assert caught.value.field == field

    def test_too_many_day_buckets_is_refused(self) -> None:
        with pytest.raises(InvalidInput) as caught:
            services._bucket_starts(Filters(since=T0 - timedelta(days=800), until=T0), "day")
        assert caught.value.field == "bucket"
