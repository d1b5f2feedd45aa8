"""Reading untrusted input: every failure names the field, so the client can point at it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from supportswarm.errors import InvalidInput

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def text(data: Mapping[str, Any], name: str, *, max_len: int, min_len: int = 1, required: bool = True) -> str:
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidInput(f"{name} is required", field=name)
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string", field=name)
    if "\x00" in value:
        raise InvalidInput(f"{name} must not contain NUL characters", field=name)
    value = value.strip()
    if required and len(value) < min_len:
        raise InvalidInput(f"{name} must be at least {min_len} characters", field=name)
    if len(value) > max_len:
        raise InvalidInput(f"{name} must be at most {max_len} characters", field=name)
    return value


def single_line(data: Mapping[str, Any], name: str, *, max_len: int, min_len: int = 1) -> str:
    value = text(data, name, max_len=max_len, min_len=min_len)
    if _CONTROL.search(value) or "\n" in value or "\r" in value:
        raise InvalidInput(f"{name} must be a single line of text", field=name)
    return value


def integer(raw: Any, name: str, *, default: int | None = None, lo: int | None = None, hi: int | None = None) -> int:
    if raw is None or raw == "":
        if default is None:
            raise InvalidInput(f"{name} is required", field=name)
        return default
    if isinstance(raw, bool):
        raise InvalidInput(f"{name} must be an integer", field=name)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be an integer", field=name) from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise InvalidInput(f"{name} must be between {lo} and {hi}", field=name)
    return value


TAG_RE = re.compile(r"^[a-z0-9][a-z0-9+#.-]{0,31}$")
MAX_TAGS = 5


def tags(raw: Any, name: str = "tags") -> list[str]:
    """A list of tags or a comma/space separated string; lower-cased, de-duplicated, order kept."""
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        raw = re.split(r"[\s,]+", raw)
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        raise InvalidInput(f"{name} must be a list of strings", field=name)
    seen: list[str] = []
    for tag in (t.strip().lower() for t in raw):
        if not tag or tag in seen:
            continue
        if not TAG_RE.match(tag):
            raise InvalidInput(f"tag {tag[:40]!r} may use a-z, 0-9 and + # . - (at most 32 characters)", field=name)
        seen.append(tag)
    if len(seen) > MAX_TAGS:
        raise InvalidInput(f"at most {MAX_TAGS} tags", field=name)
    return seen
