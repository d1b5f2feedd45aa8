from __future__ import annotations

from typing import Any

import httpx

from supportswarm.resources import Resources


async def test_similar_smoke(client: httpx.AsyncClient, make_user: Any, resources: Resources) -> None:
    asker = await make_user("asker")
    r = await asker.post("/api/v1/questions", {"title": "My card payment was declined twice", "body": "at the shop",
                                               "tags": ["cards"]})
    print(r.status_code, r.json())
    await resources.jobs.drain()
    r = await client.get("/api/v1/similar", params={"q": "card declined"})
    print(r.status_code, r.json())
    assert r.status_code == 200
