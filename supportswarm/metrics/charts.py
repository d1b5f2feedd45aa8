"""Charts as SVG drawn on the server: they work without JavaScript and under a strict CSP.

Colours and fonts come from CSS classes (web/static/css/app.css, "metrics dashboard" section), never
from style attributes, which the CSP would block. Every mark has a <title> so its value shows on
hover and reaches screen readers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 14, 28

Formatter = Callable[[float], str]


def duration(seconds: float | None) -> str:
    """A duration for people: 45 s, 12 min, 3.2 h, 2.1 d."""
    if seconds is None:
        return "–"
    for unit, size, digits in (("d", 86400, 1), ("h", 3600, 1), ("min", 60, 0)):
        if seconds >= size * (1.5 if unit != "min" else 1):
            value = seconds / size
            return f"{value:.{digits if value < 10 else 0}f} {unit}"
    return f"{seconds:.0f} s"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def count(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


@dataclass(frozen=True)
class Series:
    name: str
    css: str  # one of the chart-s1..chart-s4 classes
    values: Sequence[float | None]


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * magnitude:
            return step * magnitude
    return 10.0 * magnitude


def _frame(title: str, labels: Sequence[str], top: float, fmt: Formatter) -> list[str]:
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>"]
    plot_h = HEIGHT - TOP - BOTTOM
    for i in range(5):
        y = TOP + plot_h * (1 - i / 4)
        parts.append(f'<line class="chart-grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="chart-axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{escape(fmt(top * i / 4))}</text>")
    every = max(1, math.ceil(len(labels) / 8))
    for i, label in enumerate(labels):
        if i % every == 0:
            parts.append(f'<text class="chart-axis" x="{_x(i, len(labels)):.1f}" y="{HEIGHT - 8}" '
                         f'text-anchor="middle">{escape(label)}</text>')
    return parts


def _x(i: int, n: int) -> float:
    span = WIDTH - LEFT - RIGHT
    return LEFT + span * (i + 0.5) / max(n, 1)


def _y(value: float, top: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / top)


def _nice_duration_max(seconds: float) -> float:
    """A round top for a time axis in the unit its labels use (10 h, not 13.9 h)."""
    for size in (86400.0, 3600.0, 60.0):
        if seconds >= size * 1.5:
            return _nice_max(seconds / size) * size
    return _nice_max(seconds)


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series], fmt: Formatter = count) -> Markup:
    """Lines over buckets; a missing value (no data that day) breaks the line instead of drawing a zero."""
    highest = max((v for s in series for v in s.values if v is not None), default=0.0)
    top = _nice_duration_max(highest) if fmt is duration else _nice_max(highest)
    parts = _frame(title, labels, top, fmt)
    for s in series:
        run: list[str] = []
        for i, v in enumerate([*s.values, None]):
            if v is None:
                if len(run) > 1:
                    parts.append(f'<polyline class="chart-line {s.css}" points="{" ".join(run)}"/>')
                run = []
                continue
            x, y = _x(i, len(labels)), _y(v, top)
            run.append(f"{x:.1f},{y:.1f}")
            parts.append(f'<circle class="chart-dot {s.css}" cx="{x:.1f}" cy="{y:.1f}" r="3">'
                         f"<title>{escape(s.name)}, {escape(labels[i])}: {escape(fmt(v))}</title></circle>")
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float], fmt: Formatter = count,
              css: str = "chart-s1") -> Markup:
    top = _nice_max(max(values, default=0.0))
    parts = _frame(title, labels, top, fmt)
    slot = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    width = max(2.0, slot * 0.7)
    for i, v in enumerate(values):
        y = _y(v, top)
        parts.append(f'<rect class="chart-bar {css}" x="{_x(i, len(labels)) - width / 2:.1f}" y="{y:.1f}" '
                     f'width="{width:.1f}" height="{HEIGHT - BOTTOM - y:.1f}">'
                     f"<title>{escape(labels[i])}: {escape(fmt(v))}</title></rect>")
    parts.append("</svg>")
    return Markup("".join(parts))


def legend(series: Sequence[Series]) -> Markup:
    items = "".join(f'<li><span class="chart-key {s.css}"></span>{escape(s.name)}</li>' for s in series)
    return Markup(f'<ul class="chart-legend">{items}</ul>')


def _day(iso: str, bucket: str) -> str:
    return iso[5:10] if bucket == "day" else "wk " + iso[5:10]


def dashboard_charts(trends: Sequence[dict[str, object]], backlog: dict[str, object], bucket: str) -> dict[str, Markup]:
    """The dashboard's trend charts (per day or week) and backlog-aging bars."""
    labels = [_day(str(t["start"]), bucket) for t in trends]

    def pick(key: str, sub: str | None = None) -> list[float | None]:
        out: list[float | None] = []
        for t in trends:
            value = t[key]
            if sub is not None:
                value = value[sub] if isinstance(value, dict) else None
            out.append(float(value) if isinstance(value, int | float) else None)
        return out

    response = [Series("median", "chart-s1", pick("time_to_first_response", "median_s")),
                Series("p90", "chart-s2", pick("time_to_first_response", "p90_s"))]
    resolution = [Series("median", "chart-s1", pick("time_to_resolution", "median_s")),
                  Series("p90", "chart-s2", pick("time_to_resolution", "p90_s"))]
    rates = [Series("resolution rate", "chart-s3", pick("resolution_rate")),
             Series("deflection rate", "chart-s4", pick("deflection_rate"))]
    ages = backlog.get("by_age")
    age_rows = ages if isinstance(ages, list) else []
    return {
        "questions": bar_chart("Questions asked", labels, [v or 0.0 for v in pick("questions")]),
        "response": line_chart("Time to first response", labels, response, duration),
        "response_legend": legend(response),
        "resolution": line_chart("Time to resolution", labels, resolution, duration),
        "resolution_legend": legend(resolution),
        "rates": line_chart("Resolution and deflection rates", labels, rates, percent),
        "rates_legend": legend(rates),
        "backlog": bar_chart("Unresolved backlog by age", [str(b["label"]) for b in age_rows],
                             [float(b["count"]) for b in age_rows], count, "chart-s2"),
    }
