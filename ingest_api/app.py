"""The Starlette application, built by a factory so tests pass their own settings."""

from __future__ import annotations

import contextlib
import gc
import logging

from sqlalchemy import event
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from eventtrack.database import sqlalchemy_url
from eventtrack.errors import CLIENT_DISCONNECTED, ApiError, client_disconnected
from eventtrack.settings import Settings
from eventtrack.streaming.destinations import all_stats
from eventtrack.streaming.horizon import HorizonWatch
from ingest_api.admin.routes import admin_routes
from ingest_api.config_cache import ConfigCache
from ingest_api.dashboard.routes import dashboard_routes
from ingest_api.metrics import Metrics, destination_metrics
from ingest_api.middleware import RateLimitMiddleware, RequestIdMiddleware
from ingest_api.ofrep import routes as ofrep_routes
from ingest_api.openapi import openapi_document
from ingest_api.posthog import routes as posthog_routes
from ingest_api.privacy.routes import privacy_routes
from ingest_api.responses import error_response
from ingest_api.routes import capture, flags, health, sessions
from ingest_api.routing import API, method_routes
from ingest_api.sink import EventSink
from ingest_api.state import AppState

log = logging.getLogger(__name__)


async def _openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


async def _metrics(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    body = metrics.render()
    try:
        async with request.app.state.eventtrack.engine.connect() as conn:
            body += destination_metrics(await all_stats(conn))
    except (OperationalError, InterfaceError, TimeoutError):
        pass  # the database is away: this process's own figures still answer
    return Response(body, media_type=metrics.content_type)


def routes() -> list[Route]:
    return [
        # Starlette tries the routes in order: the hot paths first.
        *method_routes(f"{API}/capture/", {"POST": capture.capture}),
        *method_routes(f"{API}/batch/", {"POST": capture.batch}),
        *method_routes(
            f"{flags.PUBLIC}/for_user/", {"GET": flags.flags_for_user_query, "POST": flags.flags_for_user_body}
        ),
        *method_routes(f"{API}/session/start/", {"POST": sessions.start_session}),
        *method_routes(f"{API}/session/{{session_id}}/end/", {"PUT": sessions.end_session}),
        *method_routes(f"{flags.PUBLIC}/", {"GET": flags.list_flags}),
        *method_routes(f"{flags.PUBLIC}/{{flag_id}}/", {"GET": flags.get_flag}),
        *admin_routes(),
        *privacy_routes(),
        *posthog_routes.routes(),
        *ofrep_routes.routes(),
        Route(f"{API}/openapi.json", _openapi, methods=["GET"]),
        Route("/metrics", _metrics, methods=["GET"]),
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
    ]


async def _api_error(request: Request, exc: ApiError) -> Response:
    if exc.code == CLIENT_DISCONNECTED:  # an answer nobody reads: counted, not logged
        request.app.state.metrics.client_disconnects.inc()
    return error_response(exc)


async def _client_gone(request: Request, exc: ClientDisconnect) -> Response:
    return await _api_error(request, client_disconnected())


# Starlette's own HTTPExceptions: routing's 404 and 405 are catalogue codes; any other status Starlette raises
# (e.g. 400 for a malformed multipart form) is not ours to catalogue, so it keeps its status as `http_error`.
_STARLETTE_CODES = {404: "not_found", 405: "method_not_allowed"}


async def _http_error(request: Request, exc: HTTPException) -> Response:
    detail, headers = str(exc.detail), dict(exc.headers or {})
    code = _STARLETTE_CODES.get(exc.status_code)
    if code is not None:
        return error_response(ApiError.of(code, detail, headers=headers))
    return error_response(ApiError(status=exc.status_code, code="http_error", detail=detail, headers=headers))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(ApiError.of("internal_error"))


def _utc_sessions(engine) -> None:
    """Every connection of the API in UTC: timestamps in responses then carry +00:00 whatever PGTZ or
    the server's time zone says (connections opened under different PGTZ values would mix offsets)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _set_utc(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.close()
        dbapi_connection.commit()  # a SET in a transaction rolled back later would be undone


def create_app(settings: Settings) -> Starlette:
    database_url = settings.require_database_url()
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        engine = create_async_engine(
            sqlalchemy_url(database_url),
            pool_size=5,
            max_overflow=5,
            pool_timeout=settings.db_connect_timeout_seconds,
            pool_pre_ping=True,
            connect_args={"connect_timeout": max(1, int(settings.db_connect_timeout_seconds))},
        )
        _utc_sessions(engine)
        sink = EventSink(
            database_url,
            max_rows=settings.group_commit_max_rows,
            writers=settings.sink_writers,
            commit_timeout=settings.commit_timeout_seconds,
            connect_timeout=settings.db_connect_timeout_seconds,
            max_queued_rows=settings.max_queued_rows,
            metrics=metrics,
        )
        config = ConfigCache(engine)
        await sink.start()
        await config.start()
        horizon = HorizonWatch(engine, settings.stream_poll_seconds)
        app.state.eventtrack = AppState(settings=settings, sink=sink, engine=engine, config=config, horizon=horizon)
        # Everything loaded so far lives as long as the process: out of the cyclic collector's sight, so
        # that its full collections (~20 ms over ~90,000 objects, every few thousand requests) stop
        # walking it. And full collections 100x rarer: under a spike the requests waiting for the writer
        # hold millions of objects, every full collection walked them all (seconds with the loop stopped),
        # and the service collapsed (make bench-spike: client timeouts, drain > 120 s for 1.3M events;
        # 72 s with this). Young cycles are still collected as before; gen 2 every 1,000 gen-1 collections.
        gc.collect()
        gc.freeze()
        gc.set_threshold(700, 10, 1000)
        try:
            yield
        finally:
            await horizon.stop()
            await config.stop()
            await sink.stop()
            await engine.dispose()

    middleware = [Middleware(RequestIdMiddleware, metrics=metrics)]
    if settings.cors_allow_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_allow_origins),
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=[
                    "content-type",
                    "content-encoding",
                    "authorization",
                    "x-api-key",
                    "x-request-id",
                    "if-none-match",
                ],
                expose_headers=["etag", "retry-after", "x-request-id"],
            )
        )
    if settings.rate_limit_per_second > 0:  # off by default: then not even a layer to pass through
        middleware.append(
            Middleware(
                RateLimitMiddleware,
                rate_per_second=settings.rate_limit_per_second,
                burst=settings.rate_limit_burst,
                prefixes=(
                    f"{API}/capture",
                    f"{API}/batch",
                    f"{API}/session",
                    f"{API}/public",
                    *posthog_routes.RATE_LIMITED_PREFIXES,
                ),
            )
        )
    app = Starlette(
        # The dashboard's HTML pages (/admin/) are not part of the JSON API's OpenAPI document.
        routes=[*routes(), *dashboard_routes()],
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            ApiError: _api_error,
            ClientDisconnect: _client_gone,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    app.state.metrics = metrics
    return app
