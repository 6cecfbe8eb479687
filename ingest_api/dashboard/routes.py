"""The dashboard's pages under /admin/: sign-in with an admin key, then overview, events, live events,
sessions, rejected events, feature flags, funnels, experiments, churn risk and webhook destinations. Server-rendered;
no JavaScript needed except on the Live page (the browser's EventSource).

Cookie auth applies to these pages only: the JSON API keeps requiring
`Authorization: Bearer`, and a dashboard cookie opens nothing there.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from eventtrack.database import DATABASE_DOWN
from eventtrack.errors import CLIENT_DISCONNECTED, ApiError
from ingest_api.admin.aggregates import event_counts_answer
from ingest_api.admin.analytics import parse_funnel_query, run_funnel, saved_funnel_by_id, saved_funnel_list
from ingest_api.admin.behaviour_anomalies import anomaly_listing, judged_hours, judged_types
from ingest_api.admin.behaviour_churn import HIGHEST_FIRST_KEY, churn_listing, churn_overview, score_param
from ingest_api.admin.destinations import destination_listing, update_destination
from ingest_api.admin.events import event_listing, session_listing, session_status
from ingest_api.admin.experiments import experiment_by_id, experiment_listing, results_of_experiment
from ingest_api.admin.feature_flags import create_flag, flag_by_id, flag_listing, update_flag
from ingest_api.admin.http import text_value, time_value
from ingest_api.admin.keys import find_key
from ingest_api.admin.pagination import Slice, decode_cursor
from ingest_api.admin.rows import NEWEST_FIRST_KEY
from ingest_api.admin.stream import FILTER_PARAMS, newest_cursor, open_stream, stream_filter
from ingest_api.dashboard import analysis_form, anomaly_chart, charts, overview, pipeline_status, queries
from ingest_api.dashboard.flag_form import errors_by_field, flag_to_form, form_to_body
from ingest_api.dashboard.replay import is_replayable, replay
from ingest_api.dashboard.session import (
    COOKIE_NAME,
    Session,
    SessionCodec,
    cookie_header,
    csrf_ok,
    load_or_create_secret,
    new_session,
)
from ingest_api.dashboard.session_store import close_session, open_session, session_open
from ingest_api.decode import read_body
from ingest_api.routing import method_routes
from ingest_api.state import AppState

PREFIX = "/admin"
HERE = Path(__file__).parent
PAGE_SIZE = 50
LIVE_ROWS_KEPT = 200  # the Live page's list: older rows leave the page as new ones come
MAX_FORM_BYTES = 256 * 1024

SECURITY_HEADERS = {
    # pygal's SVG carries its own <style>; no inline script anywhere.
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self';"
        " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}

templates = Jinja2Templates(directory=str(HERE / "templates"))


def utc_text(value: datetime | str | None) -> str:
    """A time as the pages show it: UTC to the second. The database answers in its session's
    time zone (whatever the server's TimeZone or PGTZ is), so every time is converted here."""
    if value is None or value == "":
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


templates.env.filters["utc"] = utc_text
templates.env.filters["duration"] = analysis_form.duration
templates.env.filters["percent"] = analysis_form.percent
templates.env.filters["points"] = analysis_form.points
templates.env.filters["p_value"] = analysis_form.p_value
templates.env.filters["window"] = analysis_form.window_text


@dataclass
class Page:
    """What a page handler gets besides the request."""

    session: Session
    form: dict[str, str]
    form_lists: dict[str, list[str]]


Handler = Callable[[Request, Page], Awaitable[Response]]


def _codec(request: Request) -> SessionCodec:
    # Made on the first dashboard request, so an API-only process never writes the secret file.
    codec = getattr(request.app.state, "dashboard_codec", None)
    if codec is None:
        settings = _state(request).settings
        secret = settings.dashboard_secret or load_or_create_secret(settings.data_dir)
        codec = request.app.state.dashboard_codec = SessionCodec(secret, settings.dashboard_session_hours * 3600)
    return codec


def _state(request: Request) -> AppState:
    return request.app.state.eventtrack


def _secure(request: Request) -> bool:
    return _state(request).settings.dashboard_cookie_secure or request.url.scheme == "https"


def _set_session(response: Response, request: Request, session: Session) -> None:
    codec = _codec(request)
    response.headers.append(
        "set-cookie", cookie_header(codec.dumps(session), max_age=codec.max_age_seconds, secure=_secure(request))
    )


def _with_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def section(request: Request, current: Page, nav: str, status: int = 200, **context: Any) -> Response:
    """A section's page: the template named after its item in the main navigation, that item marked current."""
    return render(request, current, f"{nav}.html", status, nav=nav, **context)


def render(request: Request, page: Page | None, name: str, status: int = 200, **context: Any) -> Response:
    session = page.session if page else None
    response = templates.TemplateResponse(
        request,
        name,
        {"session": session, "csrf": session.csrf if session else "", "prefix": PREFIX, **context},
        status_code=status,
    )
    return _with_headers(response)


async def _signed_in(request: Request, session: Session | None) -> bool:
    if session is None or not session.signed_in:
        return False
    # The key the session was opened with must still be active: revoking it signs the session out.
    if not any(key_id == session.key_id for _, key_id in _state(request).config.snapshot.admin_keys):
        return False
    # And the session must not have been signed out (in any worker).
    return await session_open(_state(request).engine, session.session_id, session.key_id)


async def _read_form(request: Request) -> tuple[dict[str, str], dict[str, list[str]]] | Response:
    """An urlencoded form (the only kind the pages send), size-limited; or an error page."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        return _with_headers(Response("Forms must be application/x-www-form-urlencoded.", 415, media_type="text/plain"))
    try:
        raw = await read_body(request, MAX_FORM_BYTES)
    except ApiError as err:
        if err.code == CLIENT_DISCONNECTED:
            raise  # counted by the app's error handler; nobody reads an answer
        return _with_headers(Response("Form too large.", err.status, media_type="text/plain", headers=err.headers))
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=2000)
    except (UnicodeDecodeError, ValueError):
        return _with_headers(Response("Form could not be read.", 400, media_type="text/plain"))
    pairs = [(k, v.replace("\x00", "")) for k, v in pairs]
    lists: dict[str, list[str]] = {}
    for k, v in pairs:
        lists.setdefault(k, []).append(v)
    return dict(pairs), lists


def page(*, public: bool = False) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Session, sign-in and CSRF checks around a page; database outages become a 503 page."""

    def decorate(handler: Handler):
        @functools.wraps(handler)
        async def wrapped(request: Request) -> Response:
            session = _codec(request).loads(request.cookies.get(COOKIE_NAME))
            fresh = session is None
            if fresh:
                session = new_session()
            try:
                signed_in = public or await _signed_in(request, session)
            except DATABASE_DOWN:
                return _database_unavailable(request, None)
            if not signed_in:
                if request.method not in ("GET", "HEAD"):
                    return render(
                        request,
                        None,
                        "error.html",
                        403,
                        title="Signed out",
                        message="Your session has ended; sign in again.",
                    )
                return _with_headers(RedirectResponse(f"{PREFIX}/login?{urlencode({'next': request.url.path})}", 303))
            form: dict[str, str] = {}
            lists: dict[str, list[str]] = {}
            if request.method == "POST":
                parsed = await _read_form(request)
                if isinstance(parsed, Response):
                    return parsed
                form, lists = parsed
                if fresh or not csrf_ok(session, form.get("csrf_token")):
                    return render(
                        request,
                        None,
                        "error.html",
                        403,
                        title="Form expired",
                        message="The form's security token is missing or wrong; reload the page and try again.",
                    )
            current = Page(session, form, lists)
            try:
                response = await handler(request, current)
            except DATABASE_DOWN:
                response = _database_unavailable(request, current)
            if fresh and COOKIE_NAME not in response.headers.get("set-cookie", ""):
                _set_session(response, request, session)
            return _with_headers(response)

        return wrapped

    return decorate


def _database_unavailable(request: Request, current: Page | None) -> Response:
    response = render(
        request,
        current,
        "error.html",
        503,
        title="Database unavailable",
        message="The database did not answer; retry in a moment.",
    )
    response.headers["retry-after"] = str(_state(request).settings.retry_after_seconds)
    return response


def redirect(path: str, **query: Any) -> Response:
    query = {k: v for k, v in query.items() if v not in (None, "")}
    return RedirectResponse(PREFIX + path + (f"?{urlencode(query)}" if query else ""), 303)


# --- sign-in ---------------------------------------------------------------------


def _safe_next(value: str | None) -> str:
    # Only a page of the dashboard: never an absolute or protocol-relative URL.
    if value and value.startswith(PREFIX + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return PREFIX + "/"


@page(public=True)
async def login_form(request: Request, current: Page) -> Response:
    next_page = _safe_next(request.query_params.get("next"))
    if await _signed_in(request, current.session):
        return redirect(next_page[len(PREFIX) :])
    return render(request, current, "login.html", next=next_page, error=None)


@page(public=True)
async def login(request: Request, current: Page) -> Response:
    next_page = _safe_next(request.query_params.get("next") or current.form.get("next"))
    state = _state(request)
    key = current.form.get("api_key", "").strip()
    if not state.config.snapshot.loaded:
        return render(
            request,
            current,
            "login.html",
            503,
            next=next_page,
            error="The service is still starting; retry in a moment.",
        )
    key_id = find_key(key, state.config.snapshot.admin_keys) if 0 < len(key) <= 200 else None
    if key_id is None:
        return render(request, current, "login.html", 401, next=next_page, error="This is not an active admin API key.")
    session_id = await open_session(state.engine, key_id, timedelta(hours=state.settings.dashboard_session_hours))
    response = RedirectResponse(next_page, 303)
    # A new session (and CSRF token) on sign-in: a token seen before sign-in is worth nothing after.
    _set_session(response, request, new_session(key_id, session_id))
    return response


@page()
async def logout(request: Request, current: Page) -> Response:
    # Server-side: a copy of the cookie (and its CSRF token) opens nothing after this.
    await close_session(_state(request).engine, current.session.session_id)
    response = redirect("/login", signed_out=1)
    response.headers.append("set-cookie", cookie_header("", max_age=0, secure=_secure(request)))
    return response


# --- overview ------------------------------------------------------------------------


@page()
async def overview_page(request: Request, current: Page) -> Response:
    state = _state(request)
    now = datetime.now(UTC)
    async with state.engine.connect() as conn:
        data = await overview.load(state, conn, now)
    top = await event_counts_answer(state, now - timedelta(days=7), now)
    status = await pipeline_status.last_run(state.settings.dagster_host, state.settings.dagster_port)
    figures: dict[str, Any] = {}
    if data["per_hour"]:
        figures["per_hour"] = charts.bar_chart(
            data["per_hour"].labels, data["per_hour"].values, title="Events per hour (UTC)", series="events"
        )
    if data["per_day"]:
        figures["per_day"] = charts.bar_chart(
            data["per_day"].labels, data["per_day"].values, title="Events per day (UTC)", series="events"
        )
    if data["active"]:
        figures["dau"] = charts.line_chart(
            data["active"]["dau"].labels, {"DAU": data["active"]["dau"].values}, title="Daily active users"
        )
    if data["sessions"]:
        figures["sessions"] = charts.bar_chart(
            data["sessions"]["count"].labels,
            data["sessions"]["count"].values,
            title="Sessions per day",
            series="sessions",
        )
        figures["median"] = charts.line_chart(
            data["sessions"]["median_minutes"].labels,
            {"median minutes": data["sessions"]["median_minutes"].values},
            title="Median session duration (minutes)",
        )
    top_items = [(r["event_type"], r["count"]) for r in top["results"][:10]]
    if top_items:
        figures["top"] = charts.horizontal_bar_chart(top_items, title="Top event types, last 7 days", series="events")
    return section(
        request,
        current,
        "overview",
        data=data,
        figures=figures,
        top=top,
        top_items=top_items,
        pipeline=status,
    )


# --- events and sessions -----------------------------------------------------------


def _time_filter(value: str | None) -> str | None:
    """A datetime-local input has no zone: the dashboard's times are UTC."""
    if not value:
        return None
    value = value.strip()
    if len(value) in (16, 19) and value[10:11] == "T":
        return value + "Z"
    return value


def _pager(path: str, filters: dict[str, Any], part: Slice) -> dict[str, str | None]:
    def link(cursor: str | None) -> str | None:
        return (
            None
            if cursor is None
            else PREFIX + path + "?" + urlencode({**{k: v for k, v in filters.items() if v}, "cursor": cursor})
        )

    return {"next": link(part.next), "previous": link(part.previous)}


@page()
async def events_page(request: Request, current: Page) -> Response:
    q = request.query_params
    filters = {name: q.get(name, "").strip() for name in ("event_type", "distinct_id", "start", "end")}
    try:
        event_type, distinct_id = (
            text_value("event_type", filters["event_type"]),
            text_value("distinct_id", filters["distinct_id"]),
        )
        cursor = decode_cursor(q.get("cursor"), NEWEST_FIRST_KEY)
        start, end = (
            time_value("start", _time_filter(filters["start"])),
            time_value("end", _time_filter(filters["end"])),
        )
        async with _state(request).engine.connect() as conn:
            part = await event_listing(
                conn,
                event_type=event_type,
                distinct_id=distinct_id,
                start=start,
                end=end,
                limit=PAGE_SIZE,
                cursor=cursor,
            )
    except ApiError as err:
        return section(request, current, "events", 400, filters=filters, rows=[], pages={}, error=err)
    return section(
        request,
        current,
        "events",
        filters=filters,
        rows=part.results,
        pages=_pager("/events", filters, part),
        error=None,
    )


@page()
async def event_page(request: Request, current: Page) -> Response:
    event_uuid = request.path_params["event_uuid"]
    ts = request.query_params.get("ts", "")
    found = None
    try:
        at = datetime.fromisoformat(ts)
        if at.tzinfo is None:
            raise ValueError
        # The events listing for the event's own microsecond (one partition, by index), then the uuid among them.
        async with _state(request).engine.connect() as conn:
            part = await event_listing(conn, start=at, end=at + timedelta(microseconds=1), limit=1000)
        found = next((e for e in part.results if e["uuid"] == event_uuid), None)
    except (ValueError, ApiError):
        pass
    if found is None:
        return render(
            request,
            current,
            "error.html",
            404,
            nav="events",
            title="Event not found",
            message="No event has this id and timestamp.",
        )
    pretty = json.dumps(found, indent=2, ensure_ascii=False, sort_keys=False)
    return render(request, current, "event.html", nav="events", event=found, pretty=pretty)


@page()
async def sessions_page(request: Request, current: Page) -> Response:
    q = request.query_params
    filters = {"distinct_id": q.get("distinct_id", "").strip(), "status": q.get("status", "")}
    try:
        distinct_id, status = text_value("distinct_id", filters["distinct_id"]), session_status(filters["status"])
        cursor = decode_cursor(q.get("cursor"), NEWEST_FIRST_KEY)
        async with _state(request).engine.connect() as conn:
            part = await session_listing(conn, distinct_id=distinct_id, status=status, limit=PAGE_SIZE, cursor=cursor)
    except ApiError as err:
        return section(request, current, "sessions", 400, filters=filters, rows=[], pages={}, error=err)
    rows = part.results
    return section(
        request,
        current,
        "sessions",
        filters=filters,
        rows=rows,
        pages=_pager("/sessions", filters, part),
        error=None,
    )


# --- live events ----------------------------------------------------------------------


@page()
async def live_page(request: Request, current: Page) -> Response:
    """The page; its script follows `live/stream` from the horizon at page load (`after`) with the page's
    filters. The filters are a GET form: applying them loads the page again, which opens a new stream."""
    # An empty field of the form is no filter (an empty `filter` would be a malformed one).
    chosen = [(k, v) for k, v in request.query_params.multi_items() if k in FILTER_PARAMS and v.strip()]
    values = {name: dict(chosen).get(name, "") for name in FILTER_PARAMS}
    try:
        stream_filter(QueryParams(chosen))
        after = await newest_cursor(_state(request))
    except ApiError as err:
        return section(request, current, "live", err.status, filters=values, error=err)
    return section(
        request,
        current,
        "live",
        filters=values,
        error=None,
        after=after,
        stream_url=PREFIX + "/live/stream" + (f"?{urlencode(chosen)}" if chosen else ""),
        keep=LIVE_ROWS_KEPT,
    )


@page()
async def live_stream(request: Request, current: Page) -> Response:
    """The admin API's live tail behind the session cookie (EventSource sends no Authorization header);
    it ends within a second of the session's sign-out or its key's revocation."""
    try:
        return await open_stream(request, functools.partial(_signed_in, request, current.session))
    except ApiError as err:
        return Response(err.detail, err.status, media_type="text/plain", headers=err.headers)


# --- rejected events -------------------------------------------------------------------


@page()
async def rejected_page(request: Request, current: Page) -> Response:
    q = request.query_params
    reason = q.get("reason", "").strip()[:200]
    show_all = q.get("show") == "all"
    async with _state(request).engine.connect() as conn:
        rows = await queries.rejected_events(
            conn, reason=reason, show_all=show_all, before=row_id(q.get("before", "")), limit=PAGE_SIZE + 1
        )
        reasons = await queries.rejection_reasons(conn)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    items = [
        {
            **r._mapping,
            "preview": bytes(r.preview).decode("utf-8", "replace"),
            "replayable": r.replayed_at is None and is_replayable(r.endpoint, r.event_index, r.payload_truncated),
        }
        for r in rows
    ]
    older = None
    if more and rows:
        older = (
            PREFIX
            + "/rejected?"
            + urlencode(
                {
                    k: v
                    for k, v in {"reason": reason, "show": "all" if show_all else "", "before": rows[-1].id}.items()
                    if v
                }
            )
        )
    flash = {k: q.get(k) for k in ("replayed", "still_invalid", "not_replayable") if q.get(k, "").isdigit()}
    return section(
        request,
        current,
        "rejected",
        rows=items,
        reason=reason,
        reasons=reasons,
        show_all=show_all,
        older=older,
        flash=flash,
    )


@page()
async def replay_action(request: Request, current: Page) -> Response:
    ids = [i for i in map(row_id, current.form_lists.get("id", [])) if i is not None]
    outcome = await replay(_state(request), ids)
    return redirect(
        "/rejected",
        replayed=len(outcome.replayed),
        still_invalid=len(outcome.still_invalid),
        not_replayable=len(outcome.not_replayable),
    )


# --- feature flags ---------------------------------------------------------------------


@page()
async def flags_page(request: Request, current: Page) -> Response:
    async with _state(request).engine.connect() as conn:
        flags = (await flag_listing(conn, limit=1000)).results
    return section(request, current, "flags", flags=flags, saved=request.query_params.get("saved", "")[:200])


def row_id(raw: str) -> int | None:
    """A positive bigint id written in ASCII digits, else None. `str.isdigit` alone also accepts digits such as
    "²" that `int` refuses (a 500 before)."""
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < len(raw) < 19 and int(raw) > 0 else None


def _flag_id(request: Request) -> int | None:
    return row_id(request.path_params.get("flag_id", ""))


def _flag_not_found(request: Request, current: Page) -> Response:
    return render(
        request, current, "error.html", 404, nav="flags", title="Flag not found", message="No feature flag has this id."
    )


def _flag_form(
    request: Request,
    current: Page,
    flag_id: int | None,
    values: dict[str, Any],
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> Response:
    """The flag form: a new flag (`flag_id` None) or an edit, its `values` shown, `errors` beside their fields."""
    return render(
        request,
        current,
        "flag_form.html",
        status,
        nav="flags",
        title="New feature flag" if flag_id is None else "Edit feature flag",
        flag_id=flag_id,
        values=values,
        errors=errors or {},
    )


@page()
async def flag_new_form(request: Request, current: Page) -> Response:
    return _flag_form(request, current, None, flag_to_form({"rollout_percentage": 0}))


@page()
async def flag_edit_form(request: Request, current: Page) -> Response:
    flag_id = _flag_id(request)
    flag = None
    if flag_id is not None:
        try:
            async with _state(request).engine.connect() as conn:
                flag = await flag_by_id(conn, flag_id)
        except ApiError:
            pass
    if flag is None:
        return _flag_not_found(request, current)
    return _flag_form(request, current, flag_id, flag_to_form(flag))


@page()
async def flag_create(request: Request, current: Page) -> Response:
    return await _save_flag_form(request, current, None)


@page()
async def flag_update(request: Request, current: Page) -> Response:
    flag_id = _flag_id(request)
    if flag_id is None:
        return _flag_not_found(request, current)
    return await _save_flag_form(request, current, flag_id)


async def _save_flag_form(request: Request, current: Page, flag_id: int | None) -> Response:
    """Validates and saves as the admin API does (create or full update) and shows its errors in the form."""
    values = {**current.form, "active": "on" if current.form.get("active") == "on" else ""}
    body, errors = form_to_body(current.form)
    if not errors:
        try:
            state = _state(request)
            if flag_id is None:
                saved = await create_flag(state.engine, state.config, body)
            else:
                saved = await update_flag(state.engine, state.config, flag_id, body, partial=False)
            return redirect("/flags", saved=saved["key"])
        except ApiError as err:
            if err.status == 404:
                return _flag_not_found(request, current)
            errors = err.fields or {"form": err.detail}
    return _flag_form(request, current, flag_id, values, errors_by_field(errors), 400)


@page()
async def flag_toggle(request: Request, current: Page) -> Response:
    state, flag_id = _state(request), _flag_id(request)
    try:
        if flag_id is None:
            raise ApiError.of("not_found", "No feature flag has this id.")
        saved = await update_flag(
            state.engine, state.config, flag_id, {"active": current.form.get("active") == "true"}, partial=True
        )
    except ApiError:
        return _flag_not_found(request, current)
    return redirect("/flags", saved=saved["key"])


# --- webhook destinations ---------------------------------------------------------------


@page()
async def destinations_page(request: Request, current: Page) -> Response:
    async with _state(request).engine.connect() as conn:
        destinations = (await destination_listing(conn, limit=1000)).results
    q = request.query_params
    return section(
        request, current, "destinations", destinations=destinations,
        saved={"name": q.get("saved", "")[:200], "status": q.get("status", "")},
    )  # fmt: skip


@page()
async def destination_status(request: Request, current: Page) -> Response:
    """Pause or resume, as the admin API's PATCH {"status": ...} does."""
    destination_id = row_id(request.path_params.get("destination_id", ""))
    try:
        if destination_id is None:
            raise ApiError.of("not_found", "No destination has this id.")
        async with _state(request).engine.begin() as conn:
            saved = await update_destination(
                conn, destination_id, {"status": current.form.get("status", "")}, partial=True
            )
    except ApiError as err:
        return render(
            request, current, "error.html", err.status, nav="destinations",
            title="Destination not found" if err.status == 404 else "Not changed", message=err.detail,
        )  # fmt: skip
    return redirect("/destinations/", saved=saved["name"], status=saved["status"])


# --- funnels -----------------------------------------------------------------------------

SAVED_FUNNELS_SHOWN = 50


@page()
async def funnels_page(request: Request, current: Page) -> Response:
    """The form (GET, so a funnel is a link), the ad-hoc funnel it asks for, and the saved funnels' latest results."""
    values = analysis_form.funnel_form(request.query_params)
    body, error, figure = None, None, None
    if values["steps"] or any(request.query_params.get(name) for name in ("window", "start", "end", "breakdown")):
        params = analysis_form.funnel_params(values)
        try:
            query = parse_funnel_query(
                params["steps"], params["window"], params["start"], params["end"], [], params["breakdown"]
            )
            body = await run_funnel(_state(request), query)
        except ApiError as err:
            error = err
    if body is not None:
        steps = body["results"]
        figure = charts.funnel_chart(
            [(f"{s['step']}. {s['event_type']}", s["users"]) for s in steps], title="Users per step"
        )
    async with _state(request).engine.connect() as conn:
        listed = await saved_funnel_list(conn)
        saved = [await saved_funnel_by_id(conn, f["id"]) for f in listed[:SAVED_FUNNELS_SHOWN]]
    today = datetime.now(UTC).date()
    for item in saved:
        item["run_link"] = PREFIX + "/funnels?" + urlencode(analysis_form.saved_funnel_query(item, today))
    return section(
        request, current, "funnels", 400 if error else 200, values=values, body=body, error=error, figure=figure,
        saved=saved, saved_total=len(listed),
    )  # fmt: skip


# --- experiments ---------------------------------------------------------------------------


@page()
async def experiments_page(request: Request, current: Page) -> Response:
    async with _state(request).engine.connect() as conn:
        experiments = (await experiment_listing(conn, limit=1000)).results
    return section(request, current, "experiments", experiments=experiments)


@page()
async def experiment_page(request: Request, current: Page) -> Response:
    experiment_id = row_id(request.path_params["experiment_id"])
    try:
        if experiment_id is None:
            raise ApiError.of("not_found", "No experiment has this id.")
        async with _state(request).engine.connect() as conn:
            experiment = await experiment_by_id(conn, experiment_id)
            results = await results_of_experiment(conn, experiment_id)
    except ApiError:
        return render(
            request,
            current,
            "error.html",
            404,
            nav="experiments",
            title="Experiment not found",
            message="No experiment has this id.",
        )
    rows = results["results"]
    return render(
        request, current, "experiment.html", nav="experiments", title=experiment["name"], experiment=experiment, rows=rows,
        computed_at=results["computed_at"], srm=any(r["srm_warning"] for r in rows),
        multi_exposure_users=rows[0]["multi_exposure_users"] if rows else None,
    )  # fmt: skip


# --- volume anomalies ------------------------------------------------------------------


@page()
async def anomalies_page(request: Request, current: Page) -> Response:
    """One event type's last week of hourly counts in their expected band, anomalies marked, and its anomalies."""
    now = datetime.now(UTC)
    since = now - timedelta(hours=anomaly_chart.HOURS_SHOWN)
    async with _state(request).engine.connect() as conn:
        types = await judged_types(conn, since)
        chosen = request.query_params.get("event_type", "")
        if types and chosen not in {t for t, _ in types}:
            chosen = types[0][0]  # the type with the most anomalies
        figure, series, rows = None, None, []
        if types:
            series = anomaly_chart.band_series(await judged_hours(conn, chosen, since), now)
            figure = charts.volume_band_chart(
                series.labels, series.actual, series.lower, series.upper, series.anomalies,
                title=f"{chosen}: events per hour and expected band (UTC)",
            )  # fmt: skip
            rows = (await anomaly_listing(conn, event_type=chosen, limit=PAGE_SIZE)).results
    return section(request, current, "anomalies", types=types, chosen=chosen, figure=figure, series=series, rows=rows)


@page()
async def churn_page(request: Request, current: Page) -> Response:
    """Churn risk: the latest model's verdict, the distribution of the scores, the users by score."""
    q = request.query_params
    filters = {name: q.get(name, "").strip() for name in ("min_score", "os_name", "app_version")}
    try:
        min_score = score_param(request, "min_score")
        os_name, app_version = (
            text_value("os_name", filters["os_name"]),
            text_value("app_version", filters["app_version"]),
        )
        cursor = decode_cursor(q.get("cursor"), HIGHEST_FIRST_KEY)
        async with _state(request).engine.connect() as conn:
            summary = await churn_overview(conn)
            part = await churn_listing(
                conn, min_score=min_score, os_name=os_name, app_version=app_version, limit=PAGE_SIZE, cursor=cursor
            )
    except ApiError as err:
        return section(request, current, "churn", 400, filters=filters, rows=[], pages={}, error=err, model=None,
                       bins=[], distribution=None)  # fmt: skip
    bins = summary["bins"]
    distribution = (
        charts.bar_chart([b for b, _ in bins], [n for _, n in bins], title="Users by churn score", series="users")
        if bins
        else None
    )
    return section(
        request, current, "churn", filters=filters, rows=part.results, pages=_pager("/churn", filters, part),
        error=None, model=summary["model"], bins=bins, distribution=distribution,
    )  # fmt: skip


def dashboard_routes() -> list[BaseRoute]:
    return [
        Mount(
            PREFIX,
            routes=[
                *method_routes("/", {"GET": overview_page}),
                *method_routes("/login", {"GET": login_form, "POST": login}),
                *method_routes("/logout", {"POST": logout}),
                *method_routes("/events", {"GET": events_page}),
                *method_routes("/events/{event_uuid}", {"GET": event_page}),
                *method_routes("/live/", {"GET": live_page}),
                *method_routes("/live/stream", {"GET": live_stream}),
                *method_routes("/sessions", {"GET": sessions_page}),
                *method_routes("/rejected", {"GET": rejected_page}),
                *method_routes("/rejected/replay", {"POST": replay_action}),
                *method_routes("/flags", {"GET": flags_page}),
                *method_routes("/flags/new", {"GET": flag_new_form, "POST": flag_create}),
                *method_routes("/flags/{flag_id}", {"GET": flag_edit_form, "POST": flag_update}),
                *method_routes("/flags/{flag_id}/toggle", {"POST": flag_toggle}),
                *method_routes("/funnels", {"GET": funnels_page}),
                *method_routes("/anomalies", {"GET": anomalies_page}),
                *method_routes("/experiments", {"GET": experiments_page}),
                *method_routes("/experiments/{experiment_id}", {"GET": experiment_page}),
                *method_routes("/churn", {"GET": churn_page}),
                *method_routes("/destinations/", {"GET": destinations_page}),
                *method_routes("/destinations/{destination_id}/status", {"POST": destination_status}),
                Mount("/static", StaticFiles(directory=str(HERE / "static")), name="dashboard_static"),
            ],
        )
    ]
