"""The request-id middleware as a plain ASGI app (a header with a newline cannot be sent over HTTP)."""

from __future__ import annotations

import asyncio

from ingest_api.metrics import Metrics
from ingest_api.middleware import RequestIdMiddleware


def echoed_request_id(given: bytes) -> str:
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [(b"x-request-id", given)]}
    asyncio.run(RequestIdMiddleware(app, Metrics())(scope, receive, send))
    return dict(sent[0]["headers"])[b"x-request-id"].decode()


def test_a_request_id_is_echoed_only_when_the_whole_value_is_safe():
    assert echoed_request_id(b"abc-123") == "abc-123"
    made = echoed_request_id(b"abc-123\n")  # `$` matched before the final newline: it went into the logs and back
    assert made != "abc-123\n" and len(made) == 32
