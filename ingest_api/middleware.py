"""ASGI middleware: request ids, per-client rate limits. Pure ASGI (no BaseHTTPMiddleware) to keep the hot path cheap."""

from __future__ import annotations

import contextvars
import itertools
import re
import time
import uuid

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eventtrack.client_ip import client_host
from eventtrack.errors import ApiError
from ingest_api.metrics import Metrics
from ingest_api.rate_limit import TokenBuckets, retry_after_header
from ingest_api.responses import error_response
from ingest_api.write_keys import presented_key

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class RequestIdMiddleware:
    """Takes a sane `X-Request-ID` from the client (or makes one), logs with it and echoes it back;
    counts responses by status for /metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.responses = metrics.responses
        self._by_status: dict[int, object] = {}  # the counter of each status (labels() locks and builds a key)
        # Made ids: this process's random half, then a counter (32 hex digits, like a uuid4's hex, without
        # reading the system's randomness on every request).
        self._id_prefix = uuid.uuid4().hex[:16]
        self._next_id = itertools.count()

    def _count(self, status: int) -> None:
        counter = self._by_status.get(status)
        if counter is None:
            counter = self._by_status[status] = self.responses.labels(str(status))
        counter.inc()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value.decode("latin-1")
                break
        if given and _SAFE_ID.fullmatch(given):
            request_id = given
        else:
            request_id = f"{self._id_prefix}{next(self._next_id):016x}"
        token = request_id_var.set(request_id)
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
                self._count(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


class RateLimitMiddleware:
    """429 + Retry-After past `rate` requests/s per client on the public paths.

    The client is the project write key it sends when that key is active (header or
    query string, as write_keys.presented_key reads them), else its address. A key
    that is not active counts nothing of its own: otherwise a new made-up key per
    request would get a fresh bucket each time. Off by default: many phones share one
    address behind carrier NAT.
    """

    def __init__(self, app: ASGIApp, rate_per_second: float, burst: int, prefixes: tuple[str, ...]):
        self.app = app
        self.prefixes = prefixes
        self.buckets = TokenBuckets(rate_per_second, burst)  # only installed with a rate (app.create_app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefixes):
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(_rate_limit_client(scope), time.monotonic())
        if wait:
            retry = retry_after_header(wait)
            response = error_response(
                ApiError.of(
                    "rate_limited", f"Too many requests; retry after {retry} s.", headers={"Retry-After": retry}
                )
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _rate_limit_client(scope: Scope) -> str:
    request = Request(scope)
    key = presented_key(request)
    if key is not None and key in request.app.state.eventtrack.config.snapshot.write_keys:
        return "key:" + key
    # The address uvicorn determined: X-Forwarded-For only from FORWARDED_ALLOW_IPS (127.0.0.1 by default).
    return "ip:" + (client_host(request) or "unknown")
