"""Browsers for account tests: each its own cookie jar on the same app."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

PASSWORD = "correct horse battery"
_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@asynccontextmanager
async def browser(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield client


async def log_in(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> str:
    """Logs the browser in through the login form; returns the session's CSRF token."""
    response = await client.post("/login", data={"username": username, "password": password})
    assert response.status_code == 303, response.text
    return await csrf_of(client)


async def csrf_of(client: httpx.AsyncClient) -> str:
    page = await client.get("/settings")
    assert page.status_code == 200, page.text
    match = _META.search(page.text)
    assert match is not None
    return match.group(1)
