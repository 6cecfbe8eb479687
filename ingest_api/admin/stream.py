"""The live tail: `GET /api/v1/analytics/admin/events/stream/`, Server-Sent Events of committed events.

Each stream reads `events` after its own cursor, in arrival order, up to the arrival horizon that this
process polls (eventtrack/streaming/horizon.py): an event committed by any worker or machine appears
within a poll and a query of its commit, and a resume (`Last-Event-ID`, `?after=`) neither skips nor
repeats. A stream holds one page of events at a time; a client that stops reading is cut off (the
write waits at most STREAM_SEND_TIMEOUT_SECONDS) instead of having its events piled up in memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from starlette.datastructures import MutableHeaders, QueryParams
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from eventtrack.analytics.segments import SegmentError, parse_filters
from eventtrack.database import DATABASE_DOWN
from eventtrack.errors import ApiError, unavailable
from eventtrack.streaming.tail import EventFilter, events_after
from ingest_api.admin.http import admin_only, check_unknown_params, text_value
from ingest_api.metrics import Metrics
from ingest_api.state import AppState

log = logging.getLogger(__name__)

PAGE_EVENTS = 500
MAX_SEQ = 2**63 - 1
# The wait for a first horizon when a stream starts at "now" and this process has not read one yet.
_FIRST_HORIZON_SECONDS = 5.0
# The query parameters that choose a stream's events; with `after`, every parameter a stream takes.
FILTER_PARAMS = ("event_type", "distinct_id", "filter")
# How often a stream with a `still_allowed` check asks it (the dashboard's: is the session still signed in).
_ALLOWED_CHECK_SECONDS = 1.0


class SlowConsumer(Exception):
    pass


def _seq(name: str, raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 19 or int(raw) > MAX_SEQ:
        raise ApiError.of("invalid_parameter", f"{name} must be an event's seq (an integer >= 0).", {name: "invalid"})
    return int(raw)


def stream_filter(params: QueryParams) -> EventFilter:
    """The events a stream's query parameters (FILTER_PARAMS) ask for; 400 on a bad one."""
    types = [text_value("event_type", value) for value in params.getlist("event_type")[:100]]
    try:
        properties = parse_filters(params.getlist("filter"))
    except SegmentError as err:
        raise ApiError.of("invalid_parameter", "; ".join(err.fields.values()), err.fields) from None
    return EventFilter(
        tuple(t for t in types if t), text_value("distinct_id", params.get("distinct_id")), tuple(properties)
    )


async def newest_cursor(state: AppState) -> int:
    """Where a stream "from now on" starts: this process's arrival horizon (503 while it has none yet)."""
    cursor = await state.horizon.wait_beyond(None, _FIRST_HORIZON_SECONDS)
    if cursor is None:
        raise unavailable(state.settings.retry_after_seconds, "The event stream is not ready yet; retry.")
    return cursor


async def open_stream(request: Request, still_allowed: Callable[[], Awaitable[bool]] | None = None) -> EventStream:
    """The stream a request asks for (the admin API's and the dashboard's): its filters and where it starts."""
    check_unknown_params(request, {"after", *FILTER_PARAMS})
    state: AppState = request.app.state.eventtrack
    wanted = stream_filter(request.query_params)
    # A browser's EventSource reconnects to the same URL with the newest id it saw: that one wins.
    cursor = _seq("Last-Event-ID", request.headers.get("last-event-id"))
    if cursor is None:
        cursor = _seq("after", request.query_params.get("after"))
    if cursor is None:
        cursor = await newest_cursor(state)
    return EventStream(state, request.app.state.metrics, cursor, wanted, still_allowed)


@admin_only
async def stream_events(request: Request) -> EventStream:
    return await open_stream(request)


class EventStream:
    """The streaming answer (an ASGI app: Starlette calls it like a Response, and `headers` can be added to
    like a Response's). `still_allowed`, when given, is asked every second; once it says no, the stream
    ends with a `close` event, reason "signed_out"."""

    def __init__(
        self,
        state: AppState,
        metrics: Metrics,
        cursor: int,
        wanted: EventFilter,
        still_allowed: Callable[[], Awaitable[bool]] | None = None,
    ):
        self._state = state
        self._metrics = metrics
        self._cursor = cursor
        self._wanted = wanted
        self._still_allowed = still_allowed
        self.headers = MutableHeaders(
            raw=[
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),  # nginx: pass each event on at once
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "HEAD":  # the headers are the whole answer: no stream to keep open
            await send({"type": "http.response.start", "status": 200, "headers": self.headers.raw})
            await send({"type": "http.response.body", "body": b""})
            return
        settings = self._state.settings
        metrics = self._metrics
        gone = asyncio.Event()

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch_disconnect())
        timeout = settings.stream_send_timeout_seconds

        async def write(chunk: bytes, more: bool = True) -> None:
            message: Message = {"type": "http.response.body", "body": chunk, "more_body": more}
            try:
                await asyncio.wait_for(send(message), timeout)
            except TimeoutError:
                raise SlowConsumer from None

        metrics.streams_open.inc()
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": self.headers.raw,
                }
            )
            # The resume point first: a client that reconnects before any event came knows where it was.
            await write(b"retry: 1000\nid: %d\n: connected\n\n" % self._cursor)
            await self._follow(write, gone)
        except DATABASE_DOWN:  # the client reconnects (EventSource does, after `retry`) and resumes
            log.warning("live tail: database unavailable, stream closed")
            await write(b'event: close\ndata: {"reason":"database_unavailable"}\n\n', more=False)
        except SlowConsumer:
            metrics.stream_slow_consumers.inc()
            log.warning("live tail: client not reading for %.0f s, stream closed", timeout)
            try:  # the reason, for a client that is slow rather than gone; it waits behind what is buffered
                await asyncio.wait_for(
                    send(
                        {
                            "type": "http.response.body",
                            "body": b'event: close\ndata: {"reason":"slow_consumer"}\n\n',
                            "more_body": False,
                        }
                    ),
                    timeout,
                )
            except TimeoutError:
                pass  # uvicorn closes the connection of an unfinished answer
        finally:
            metrics.streams_open.dec()
            watcher.cancel()

    async def _follow(self, write, gone: asyncio.Event) -> None:
        state = self._state
        heartbeat = state.settings.stream_heartbeat_seconds
        announced = self._cursor  # the newest id the client was told
        quiet_since = checked = time.monotonic()
        while not gone.is_set():
            if self._still_allowed is not None and time.monotonic() - checked >= _ALLOWED_CHECK_SECONDS:
                if not await self._still_allowed():
                    await write(b'event: close\ndata: {"reason":"signed_out"}\n\n', more=False)
                    return
                checked = time.monotonic()
            final = await state.horizon.wait_beyond(self._cursor, min(heartbeat, 1.0))
            if gone.is_set():
                return
            if final is not None and final > self._cursor:
                async with state.engine.connect() as conn:
                    page = await events_after(conn, self._cursor, final, self._wanted, PAGE_EVENTS)
                self._cursor = page.through
                if page.rows:
                    await write(
                        b"".join(
                            b"id: %d\nevent: event\ndata: %s\n\n" % (seq, text.encode()) for seq, _, text in page.rows
                        )
                    )
                    announced, quiet_since = page.rows[-1][0], time.monotonic()
                    continue
            if time.monotonic() - quiet_since >= heartbeat:
                # Keeps proxies from closing a quiet stream; the id moves a filtered stream's resume point
                # past the events it skipped (an id-only message updates EventSource's lastEventId).
                moved = b"id: %d\n\n" % self._cursor if self._cursor != announced else b""
                await write(moved + b": heartbeat\n\n")
                announced, quiet_since = self._cursor, time.monotonic()
