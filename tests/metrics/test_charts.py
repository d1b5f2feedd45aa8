"""Server-side SVG charts: values reach the marks, gaps stay gaps, text is escaped."""

from __future__ import annotations

import pytest

from supportswarm.metrics import charts
from supportswarm.metrics.charts import Series


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "–"), (45, "45 s"), (120, "2 min"), (5400, "1.5 h"), (36000, "10 h"), (86400 * 2.1, "2.1 d"),
])
def test_durations_read_like_people_say_them(seconds: float | None, text: str) -> None:
    assert charts.duration(seconds) == text


def test_a_missing_value_breaks_the_line() -> None:
    svg = str(charts.line_chart("t", ["a", "b", "c", "d", "e"],
                                [Series("median", "chart-s1", [1.0, 2.0, None, 3.0, 4.0])]))
    assert svg.count("<polyline") == 2 and svg.count("<circle") == 4


def test_bars_scale_to_a_round_top_and_carry_their_values() -> None:
    svg = str(charts.bar_chart("Backlog", ["< 1 h", "> 7 d"], [3.0, 7.0]))
    assert svg.count("<rect") == 2
    assert ">10</text>" in svg  # the axis top: 7 rounded up
    assert "&gt; 7 d: 7</title>" in svg


def test_labels_are_escaped() -> None:
    svg = str(charts.bar_chart("<script>alert(1)</script>", ["<b>"], [1.0]))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "<b>" not in svg
