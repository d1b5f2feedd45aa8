"""Jinja2 templates from the `web` package, with Markdown rendering that is safe by construction."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources

from starlette.templating import Jinja2Templates

from supportswarm.markdown import render_markdown

WEB_DIR = resources.files("web")
templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))


def timeago(value: datetime | None) -> str:
    if value is None:
        return ""
    seconds = int((datetime.now(UTC) - value).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return "just now"


templates.env.filters["markdown"] = render_markdown
templates.env.filters["timeago"] = timeago
