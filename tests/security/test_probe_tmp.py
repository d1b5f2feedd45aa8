from __future__ import annotations

from typing import Any

import httpx


async def test_probe(app: Any, make_user: Any) -> None:
    admin = await make_user("admin1", "admin")
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app.app, raise_app_exceptions=False), base_url="http://testserver")
    h = admin.headers | {"content-type": "application/json"}
    probes = [
        ("POST", "/api/v1/questions", '{"title": "nul \\u0000 in the title here", "body": "x", "force": true}'),
        ("POST", "/api/v1/questions", '{"title": "surrogate \\ud800 in the title", "body": "x", "force": true}'),
        ("POST", "/api/v1/questions", '{"title": "ok title long enough", "body": "x \\ud800", "force": true}'),
        ("POST", "/api/v1/webhooks", '{"url": "http://a.example/x", "description": "a\\u0000b"}'),
        ("POST", "/api/v1/webhooks", '{"url": "http://a.example/\\ud800", "description": "ab"}'),
        ("POST", "/api/v1/auth/signup", '{"username": "abcd", "password": "12345678", "email": "a\\u0000@b.cc"}'),
        ("POST", "/api/v1/auth/signup", '{"username": "abcde", "password": "1234567\\ud800"}'),
        ("POST", "/api/v1/auth/login", '{"username": "abcde\\ud800", "password": "12345678"}'),
        ("POST", "/api/v1/auth/login", '{"username": "ab\\u0000cde", "password": "12345678"}'),
        ("GET", "/api/v1/metrics/summary?until=9999-12-31", None),
        ("GET", "/api/v1/metrics/summary?since=0001-01-01", None),
        ("GET", "/api/v1/metrics/summary?until=0001-01-01", None),
        ("GET", "/api/v1/metrics/trends?since=1000-01-01", None),
        ("GET", "/api/v1/metrics/summary?since=2024-01-01T00:00:00%2B23:59&until=2024-01-01T00:00:01-23:59", None),
        ("GET", "/api/v1/questions?tag=%00", None),
        ("GET", "/api/v1/similar?q=%00abc", None),
        ("GET", "/api/v1/similar?q=%ED%A0%80", None),
        ("GET", "/api/v1/questions?status=%00", None),
        ("GET", "/users/%00", None),
        ("GET", "/users/" + "a" * 300, None),
        ("GET", "/api/v1/swarms?status=%00", None),
        ("GET", "/api/v1/webhooks/1?page=999999999999", None),
        ("GET", "/api/v1/questions?page=100000", None),
        ("POST", "/api/v1/questions", "[" * 5000 + "]" * 5000),
        ("POST", "/api/v1/questions", '{"title": "fine title here ok", "body": "x", "tags": "a,b,c,d,e,f"}'),
        ("POST", "/api/v1/questions", '{"title": "fine title here ok", "body": "x", "tags": {"a": 1}}'),
        ("POST", "/api/v1/questions", '{"title": "fine title here ok", "body": "x", "force": 2}'),
        ("POST", "/api/v1/questions", '{"title": "fine title here ok", "body": "x", "force": []}'),
        ("PATCH", "/api/v1/questions/1", '{"title": "fine title here ok", "body": "x", "comment": 5}'),
        ("POST", "/api/v1/questions/1/vote", '{"value": []}'),
        ("POST", "/api/v1/questions/1/vote", '{"value": 1.0}'),
        ("POST", "/api/v1/questions/1/duplicate", '{"duplicate_of": 1e300}'),
        ("POST", "/api/v1/questions/1/answers", '{"body": "hello there", "wiki": []}'),
        ("GET", "/api/v1/metrics/summary?tag=a,b", None),
        ("GET", "/api/v1/metrics/summary?tag=" + "a" * 40, None),
        ("GET", "/api/v1/metrics/trends?bucket=%00", None),
        ("GET", "/api/v1/metrics/summary?since=2024-13-01", None),
        ("GET", "/api/v1/metrics/export.csv?until=9999-12-31T23:59:59%2B00:00", None),
        ("GET", "/api/v1/swarms/1?after=-1", None),
        ("GET", "/api/v1/similar?q=a&limit=1e3", None),
        ("GET", "/api/v1/similar", None),
        ("POST", "/api/v1/webhooks", '{"url": "http://[::1/x"}'),
        ("POST", "/api/v1/webhooks", '{"url": "http://a.example:99999/x"}'),
        ("POST", "/api/v1/webhooks", '{"url": "http://a.example/x", "events": "a,b"}'),
        ("POST", "/api/v1/webhooks", '{"url": "http://a.example/x", "events": [[]]}'),
        ("POST", "/api/v1/metrics/emergent/1/incident", None),
        ("DELETE", "/api/v1/webhooks/99", None),
        ("GET", "/api/v1/questions/99999999999", None),
        ("POST", "/api/v1/auth/signup", '{"username": ["a"], "password": "12345678"}'),
        ("POST", "/api/v1/auth/signup", '{"username": "abcdef", "password": "12345678", "email": ["x"]}'),
        ("POST", "/api/v1/auth/login", '{"username": "abcdef", "password": ["x"]}'),
    ]
    for method, url, body in probes:
        r = await client.request(method, url, content=body, headers=h)
        print(r.status_code, method, url[:80], (body or "")[:60], r.text[:150])
