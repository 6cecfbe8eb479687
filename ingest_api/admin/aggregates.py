"""Admin routes over the pipeline's marts: exact event counts, and the hourly/daily aggregate rows.

The service only reads the analytics schema; dbt owns it (docs/analytics.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from eventtrack import clickhouse
from eventtrack.analytics.event_buckets import (
    BUCKET_TYPES,
    clickhouse_bucket_counts_sql,
    clickhouse_buckets_sql,
    sort_columns,
)
from eventtrack.analytics.hybrid import clickhouse_time
from eventtrack.analytics.segments import (
    SegmentError,
    clickhouse_breakdown,
    clickhouse_filters_sql,
    filters_sql,
    parse_breakdown,
    parse_filters,
)
from eventtrack.errors import ApiError
from ingest_api.admin.clickhouse_reads import clickhouse_rows, current_split, unloaded_rows
from ingest_api.admin.http import (
    admin_only,
    base_url,
    check_unknown_params,
    json_response,
    text_filters,
    text_param,
    time_param,
)
from ingest_api.admin.pagination import TEXT, TIMESTAMP, Cursor, decode_cursor, page, parse_limit
from ingest_api.state import AppState

HOURLY = "analytics.agg_events_hourly"
DAILY = "analytics.agg_events_daily"
MAX_COUNT_RANGE = timedelta(days=800)


def full_hours(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The whole UTC hours inside [start, end) as [first, last); empty (first >= last) when there are none."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    first = start.replace(minute=0, second=0, microsecond=0)
    if first < start:
        first += timedelta(hours=1)
    last = end.replace(minute=0, second=0, microsecond=0)
    return first, last


# Exact counts: the hourly aggregate for whole hours that received nothing since
# the pipeline's last run, raw events for the rest (the partial hours at the
# edges, and "dirty" hours that got events after the last run: late or new).
# An hour with no aggregate row and no new arrival has no events at all, because
# any event it had arrived before the watermark and made the pipeline build it.
# Hours queued in aggregate_rebuilds after the watermark (an erasure deleted
# events there) are dirty too.
_COUNTS_WITH_AGGREGATES = f"""
WITH watermark AS (
    SELECT coalesce(max(_ingest_seq_watermark), 0) AS seq FROM {HOURLY}
),
dirty AS (
    SELECT DISTINCT date_trunc('hour', e."timestamp", 'UTC') AS hour
    FROM events e, watermark w
    WHERE e.ingest_seq > w.seq AND e."timestamp" >= :h_first AND e."timestamp" < :h_last {{event_filter_e}}
    UNION
    -- hours whose events were erased since (docs/privacy.md): the aggregate still counts them
    SELECT r.bucket_at FROM aggregate_rebuilds r, watermark w
    WHERE r.seq > w.seq AND r.bucket_at >= :h_first AND r.bucket_at < :h_last
),
counts AS (
    SELECT a.event_type, sum(a.event_count)::bigint AS n
    FROM {HOURLY} a
    WHERE a.hour >= :h_first AND a.hour < :h_last
      AND NOT EXISTS (SELECT 1 FROM dirty d WHERE d.hour = a.hour) {{event_filter_a}}
    GROUP BY a.event_type
    UNION ALL
    SELECT e.event_type, count(*) AS n
    FROM events e JOIN dirty d ON e."timestamp" >= d.hour AND e."timestamp" < d.hour + interval '1 hour'
    WHERE true {{event_filter_e}}
    GROUP BY e.event_type
    UNION ALL
    SELECT e.event_type, count(*) AS n
    FROM events e
    WHERE ((e."timestamp" >= :start AND e."timestamp" < :h_first) OR (e."timestamp" >= :h_last AND e."timestamp" < :end)) {{event_filter_e}}
    GROUP BY e.event_type
)
SELECT event_type, sum(n)::bigint AS count FROM counts GROUP BY event_type ORDER BY count DESC, event_type
"""

_COUNTS_RAW = """
SELECT e.event_type, count(*)::bigint AS count FROM events e
WHERE e."timestamp" >= :start AND e."timestamp" < :end {event_filter_e}
GROUP BY e.event_type ORDER BY count DESC, e.event_type
"""


async def _has_table(conn, name: str) -> bool:
    return (await conn.execute(sa.text("SELECT to_regclass(:name) IS NOT NULL"), {"name": name})).scalar_one()


def check_count_range(start: datetime, end: datetime) -> None:
    if start >= end:
        raise ApiError.of("invalid_parameter", "start must be before end.", {"start": "must be before end"})
    if end - start > MAX_COUNT_RANGE:
        raise ApiError.of("invalid_parameter", "The range is limited to 800 days.", {"start": "range too long"})


async def count_events(
    conn: AsyncConnection,
    *,
    start: datetime,
    end: datetime,
    event_type: str | None = None,
    segment: Segment | None = None,
) -> dict[str, Any]:
    """Exact event counts per event type in [start, end) (and per breakdown value when segmented), most first."""
    params: dict[str, Any] = {"start": start, "end": end}
    filters = {"event_filter_e": "", "event_filter_a": ""}
    if event_type:
        params["event_type"] = event_type
        filters = {
            "event_filter_e": "AND e.event_type = :event_type",
            "event_filter_a": "AND a.event_type = :event_type",
        }
    if segment:  # the aggregates hold no properties: filters and breakdowns read raw events
        return await _segmented_counts(conn, start, end, params, filters["event_filter_e"], *segment)
    h_first, h_last = full_hours(start, end)
    if h_first < h_last and await _has_table(conn, HOURLY):
        params.update(h_first=h_first, h_last=h_last)
        sql = _COUNTS_WITH_AGGREGATES.format(**filters)
    else:
        sql = _COUNTS_RAW.format(**filters)
    rows = (await conn.execute(sa.text(sql), params)).all()
    return {
        "start": start,
        "end": end,
        "total": sum(r.count for r in rows),
        "results": [{"event_type": r.event_type, "count": r.count} for r in rows],
    }


@admin_only
async def event_counts(request: Request) -> Response:
    check_unknown_params(request, {"start", "end", "event_type", "filter", "breakdown"})
    segment = _segment(request)
    end = time_param(request, "end") or datetime.now(UTC)
    start = time_param(request, "start") or end - timedelta(hours=24)
    check_count_range(start, end)
    event_type = text_param(request, "event_type")
    state: AppState = request.app.state.eventtrack
    return json_response(await event_counts_answer(state, start, end, event_type, segment))


async def event_counts_answer(
    state: AppState, start: datetime, end: datetime, event_type: str | None = None, segment: Segment | None = None
) -> dict[str, Any]:
    """The event counts the API and the dashboard show: on ClickHouse when it is configured, else on Postgres."""
    if state.settings.clickhouse_url:
        return await clickhouse_counts(state, start, end, event_type, segment)
    async with state.engine.connect() as conn:
        return await count_events(conn, start=start, end=end, event_type=event_type, segment=segment)


@dataclass(frozen=True)
class BucketQuery:
    """An event_aggregates request, parsed."""

    granularity: str  # hour | day
    equal: dict[str, str]  # event_type / app_version / os_name filters
    start: datetime | None
    end: datetime | None
    cursor: Cursor | None
    limit: int
    segment: Segment | None

    @property
    def bucket(self) -> str:
        return "hour" if self.granularity == "hour" else "day"

    def bound(self, value: datetime) -> datetime | date:
        """A time bound as the bucket column takes it."""
        return value if self.granularity == "hour" else value.date()


@admin_only
async def event_aggregates(request: Request) -> Response:
    state: AppState = request.app.state.eventtrack
    check_unknown_params(
        request,
        {
            "granularity",
            "event_type",
            "app_version",
            "os_name",
            "start",
            "end",
            "limit",
            "cursor",
            "filter",
            "breakdown",
        },
    )
    segment = _segment(request)
    granularity = request.query_params.get("granularity", "hour")
    if granularity not in ("hour", "day"):
        raise ApiError.of("invalid_parameter", "granularity must be hour or day.", {"granularity": "hour or day"})
    limit = parse_limit(request.query_params.get("limit"))
    cursor = decode_cursor(
        request.query_params.get("cursor"), (TIMESTAMP, TEXT, TEXT, TEXT) + ((TEXT,) if segment and segment[2] else ())
    )
    _, equal = text_filters(request, ("event_type", "app_version", "os_name"))
    query = BucketQuery(
        granularity, equal, time_param(request, "start"), time_param(request, "end"), cursor, limit, segment
    )
    rows = await bucket_rows(state, query)

    def key_of(row: dict[str, Any]) -> tuple:
        value = row[query.bucket]
        edge = value.isoformat() if granularity == "hour" else datetime(value.year, value.month, value.day).isoformat()
        key = (edge, row["event_type"], row["app_version"] or "", row["os_name"] or "")
        return key + (row["breakdown_value"] or "",) if "breakdown_value" in row else key

    params = {k: request.query_params.getlist(k) for k in request.query_params}
    body = page(rows, limit=limit, cursor=cursor, key_of=key_of, base_url=base_url(request), params=params)
    return json_response(body)


async def bucket_rows(state: AppState, query: BucketQuery) -> list[dict[str, Any]]:
    """Up to limit + 1 aggregate rows after (or before) the cursor in keyset order: from the marts (raw events
    when segmented) on Postgres; with ClickHouse configured, the buckets inside retention computed on
    ClickHouse (the marts' rows as the next pipeline run will write them) and the older ones from Postgres."""
    if not state.settings.clickhouse_url:
        async with state.engine.connect() as conn:
            return await _postgres_bucket_rows(conn, query, None)
    async with state.engine.connect() as conn:
        client, target, split = await current_split(state, conn)
        older = await _postgres_bucket_rows(conn, query, split.cutoff)
        ch_filters, ch_params = clickhouse_filters_sql(query.segment[0] if query.segment else [])
        ch_params.update(split.clickhouse_params())
        raw_bounds = _raw_bounds(query)
        bounds = ""
        for name, op in (("raw_start", ">="), ("raw_end", "<")):
            if name in raw_bounds:
                bounds += f' AND e."timestamp" {op} :{name}'
                ch_filters += f" AND timestamp {op} {{{name}:DateTime64(6, 'UTC')}}"
                ch_params[name] = clickhouse_time(raw_bounds[name])
        unloaded = await unloaded_rows(conn, split, bounds, raw_bounds)
    bucket, kind = query.bucket, BUCKET_TYPES[query.bucket]
    where = []
    for name, value in query.equal.items():
        where.append(f"{name} = {{eq_{name}:String}}")
        ch_params[f"eq_{name}"] = value
    for name, op, value in (("start", ">=", query.start), ("end", "<", query.end)):
        if value is not None:
            where.append(f"{bucket} {op} {{{name}:{kind}}}")
            ch_params[name] = query.bound(clickhouse_time(value))
    breakdown = query.segment[3] if query.segment else None
    if query.cursor:
        columns = sort_columns(bucket, breakdown is not None)
        marks = [f"{{c{i}:{kind if i == 0 else 'String'}}}" for i in range(len(columns))]
        where.append(f"({', '.join(columns)}) {'>' if query.cursor.forward else '<'} ({', '.join(marks)})")
        ch_params.update({f"c{i}": value for i, value in enumerate(query.cursor.key)})
        ch_params["c0"] = query.bound(clickhouse_time(query.cursor.key[0]))
    if query.segment is None:
        ch_params["timeout_us"] = state.settings.session_timeout_minutes * 60 * 1_000_000
    sql = clickhouse_buckets_sql(
        target.database,
        bucket,
        sessions=query.segment is None,
        breakdown_expr=clickhouse_breakdown(breakdown) if breakdown else None,
        filters=ch_filters,
        where=where,
        descending=query.cursor is not None and not query.cursor.forward,
        limit=query.limit + 1,
        unloaded=unloaded,
    )
    names = [bucket, "event_type", "app_version", "os_name", "event_count", "unique_users", "unique_devices"]
    names += ["unique_sessions"] + (["breakdown_value"] if breakdown else [])
    recent = [dict(zip(names, row, strict=True)) for row in await clickhouse_rows(client, sql, ch_params)]
    for row in recent:
        if bucket == "hour":  # the client gives UTC without a zone
            row["hour"] = row["hour"].replace(tzinfo=UTC)
    # Older buckets come first in ascending order: the two parts never share a bucket (the cutoff is midnight).
    merged = older + recent if query.cursor is None or query.cursor.forward else recent + older
    return merged[: query.limit + 1]


async def _postgres_bucket_rows(
    conn: AsyncConnection, query: BucketQuery, before: datetime | None
) -> list[dict[str, Any]]:
    """The Postgres endpoint's rows (limit + 1, keyset order), only of the buckets before `before` when given."""
    bucket = query.bucket
    where, params = [f"{name} = :{name}" for name in query.equal], dict(query.equal)
    for name, op, value in (("start", ">=", query.start), ("end", "<", query.end), ("before", "<", before)):
        if value is not None:
            where.append(f"{bucket} {op} :{name}")
            params[name] = query.bound(value)
    sort = [bucket, "event_type", "coalesce(app_version, '')", "coalesce(os_name, '')"]
    if query.segment and query.segment[2]:
        sort.append("coalesce(breakdown_value, '')")
    order = "ASC"
    if query.cursor:
        key = query.cursor.key
        params.update({f"c{i}": value for i, value in enumerate(key)}, c0=query.bound(key[0]))
        where.append(
            f"({', '.join(sort)}) {'>' if query.cursor.forward else '<'} ({', '.join(f':c{i}' for i in range(len(sort)))})"
        )
        order = "ASC" if query.cursor.forward else "DESC"
    table = HOURLY if query.granularity == "hour" else DAILY
    columns = f"{bucket}, event_type, app_version, os_name, event_count, unique_users, unique_devices, unique_sessions"
    source = table
    if query.segment:
        params.update(_raw_bounds(query))
        source = _raw_buckets(bucket, query.segment[0], query.segment[1], query.segment[2], params)
        columns = _RAW_COLUMNS.format(bucket=bucket) + (", breakdown_value" if query.segment[2] else "")
    elif not await _has_table(conn, table):
        return []  # the pipeline has not built it yet
    sql = f"SELECT {columns} FROM {source}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY " + ", ".join(f"{c} {order}" for c in sort) + f" LIMIT {query.limit + 1}"
    return [dict(r._mapping) for r in (await conn.execute(sa.text(sql), params)).all()]


_MART_SUMS = {
    "hour": f"SELECT hour AS bucket, sum(event_count)::bigint AS n FROM {HOURLY} WHERE hour >= :since",
    "day": f"SELECT day AS bucket, sum(event_count)::bigint AS n FROM {DAILY} WHERE day >= :since",
}
_UNLOADED_PER_BUCKET = {
    "hour": "date_trunc('hour', e.\"timestamp\", 'UTC')",
    "day": "(e.\"timestamp\" AT TIME ZONE 'UTC')::date",
}


async def events_per_bucket(state: AppState, bucket: str, since: datetime | date) -> dict[Any, int] | None:
    """Events per UTC hour or day from `since` on (the dashboard overview's charts): the aggregates' sums, None
    before the pipeline built them; with ClickHouse configured, counted there at this moment (exact as
    clickhouse_counts: ClickHouse's part, plus Postgres's unloaded arrivals, plus the aggregates before the
    retention cutoff)."""
    table = HOURLY if bucket == "hour" else DAILY
    async with state.engine.connect() as conn:
        built = await _has_table(conn, table)
        if not state.settings.clickhouse_url:
            if not built:
                return None
            rows = await conn.execute(sa.text(_MART_SUMS[bucket] + " GROUP BY 1"), {"since": since})
            return {r.bucket: r.n for r in rows}
        client, target, split = await current_split(state, conn)
        parts = []
        if built:
            before = split.cutoff if bucket == "hour" else split.cutoff.date()
            sql = _MART_SUMS[bucket] + f" AND {bucket} < :before GROUP BY 1"
            parts += (await conn.execute(sa.text(sql), {"since": since, "before": before})).all()
        start = since if isinstance(since, datetime) else datetime(since.year, since.month, since.day, tzinfo=UTC)
        unloaded = (
            f"SELECT {_UNLOADED_PER_BUCKET[bucket]}, count(*) FROM events e"
            f' WHERE {split.UNLOADED} AND e."timestamp" >= :start GROUP BY 1'
        )
        parts += (await conn.execute(sa.text(unloaded), {**split.postgres_params(), "start": start})).all()
    params = {**split.clickhouse_params(), "start": clickhouse_time(start)}
    in_clickhouse = await clickhouse_rows(client, clickhouse_bucket_counts_sql(target.database, bucket), params)
    counts: dict[Any, int] = {}
    for key, n in [*parts, *in_clickhouse]:
        if bucket == "hour":  # ClickHouse gives UTC without a zone, Postgres in its session's zone
            key = key.replace(tzinfo=UTC) if key.tzinfo is None else key.astimezone(UTC)
        counts[key] = counts.get(key, 0) + int(n)
    return counts


# --- segmentation: property filters and a breakdown, over raw events ---------------------------


# (filters, their SQL, breakdown expression, the breakdown as asked)
Segment = tuple[list, str, str | None, str | None]


def _segment(request: Request) -> Segment | None:
    """(filters, their SQL, breakdown expression, breakdown as asked) when the request segments, else None."""
    raw_filters, raw_breakdown = request.query_params.getlist("filter"), request.query_params.get("breakdown")
    if not raw_filters and not raw_breakdown:
        return None
    try:
        filters = parse_filters(raw_filters)
        breakdown = parse_breakdown(raw_breakdown)
    except SegmentError as err:
        raise ApiError.of("invalid_parameter", "Invalid filter or breakdown.", err.fields) from None
    where, _ = filters_sql(filters)
    return filters, where, breakdown, raw_breakdown or None


def _bind_filters(filters: list, params: dict[str, Any]) -> None:
    params.update(filters_sql(filters)[1])


def _segmented_sql(event_filter: str, where: str, breakdown: str | None, more: str = "", ordered: bool = True) -> str:
    value = f", {breakdown} AS breakdown_value" if breakdown else ", NULL AS breakdown_value"
    group = "e.event_type, breakdown_value" if breakdown else "e.event_type"
    return (
        f'SELECT e.event_type{value}, count(*)::bigint AS count FROM events e WHERE e."timestamp" >= :start AND e."timestamp" < :end'
        f" {event_filter}{where}{more} GROUP BY {group}" + (f" ORDER BY count DESC, {group}" if ordered else "")
    )


def _segment_answer(start, end, rows: list[tuple[str, Any, int]], breakdown: bool) -> dict[str, Any]:
    results = [
        {"event_type": event_type, **({"breakdown_value": value} if breakdown else {}), "count": count}
        for event_type, value, count in rows
    ]
    return {"start": start, "end": end, "total": sum(r["count"] for r in results), "results": results}


async def _segmented_counts(
    conn: AsyncConnection,
    start,
    end,
    params,
    event_filter: str,
    filters,
    where: str,
    breakdown: str | None,
    breakdown_by: str | None,
) -> dict[str, Any]:
    _bind_filters(filters, params)
    rows = (await conn.execute(sa.text(_segmented_sql(event_filter, where, breakdown)), params)).all()
    return _segment_answer(start, end, [tuple(r) for r in rows], breakdown is not None)


async def clickhouse_counts(
    state: AppState, start: datetime, end: datetime, event_type: str | None, segment: Segment | None
) -> dict[str, Any]:
    """count_events' answer, exact at every moment (eventtrack/analytics/hybrid.py): inside retention ClickHouse
    counts its part and Postgres the arrivals not loaded yet; before the retention cutoff (midnight) the range
    is Postgres's own answer (its aggregates outlive raw events). Counts add up. Ties in count are ordered by
    code point (Postgres's C collation)."""
    filters, where, breakdown, breakdown_by = segment or ([], "", None, None)
    parts: list[tuple[str, Any, int]] = []
    async with state.engine.connect() as conn:
        client, target, split = await current_split(state, conn)
        if start < split.cutoff:
            older = await count_events(
                conn, start=start, end=min(end, split.cutoff), event_type=event_type, segment=segment
            )
            parts += [(r["event_type"], r.get("breakdown_value"), r["count"]) for r in older["results"]]
        recent_start = max(start, split.cutoff)
        if recent_start >= end:
            in_clickhouse = []
        else:
            params: dict[str, Any] = {"start": recent_start, "end": end, **split.postgres_params()}
            event_filter = ""
            if event_type:
                params["event_type"] = event_type
                event_filter = "AND e.event_type = :event_type"
            _bind_filters(filters, params)
            unloaded = _segmented_sql(event_filter, where, breakdown, f" AND {split.UNLOADED}", ordered=False)
            parts += [tuple(r) for r in (await conn.execute(sa.text(unloaded), params)).all()]
            # It reads the table itself (no unloaded rows in the query): the promoted columns are there.
            promoted = await anyio.to_thread.run_sync(clickhouse.promoted_columns, client, target)
            ch_where, ch_params = clickhouse_filters_sql(filters, promoted=promoted)
            value = clickhouse_breakdown(breakdown_by, promoted) if breakdown_by else "NULL"
            sql = (
                f"SELECT event_type, CAST({value} AS Nullable(String)) AS breakdown_value, count() AS count"
                f" FROM {target.database}.events"
                " WHERE timestamp >= {start:DateTime64(6, 'UTC')} AND timestamp < {end:DateTime64(6, 'UTC')}"
                f" AND {split.CLICKHOUSE_PART}"
                + (" AND event_type = {event_type:String}" if event_type else "")
                + f"{ch_where} GROUP BY event_type, breakdown_value"
            )
            ch_params.update(split.clickhouse_params(), event_type=event_type or "")
            ch_params.update(start=clickhouse_time(recent_start), end=clickhouse_time(end))
            in_clickhouse = await clickhouse_rows(client, sql, ch_params)
    counts: dict[tuple[str, Any], int] = {}
    for event_type_, value_, count in [*in_clickhouse, *parts]:
        counts[(event_type_, value_)] = counts.get((event_type_, value_), 0) + int(count)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1] is None, kv[0][1] or ""))
    return _segment_answer(start, end, [(t, v, n) for (t, v), n in ordered], breakdown is not None)


# Same columns as the marts; unique_sessions is null: sessions (explicit or derived)
# are only known to the pipeline's models.
_RAW_COLUMNS = "{bucket}, event_type, app_version, os_name, event_count, unique_users, unique_devices, unique_sessions"


def _raw_bounds(query: BucketQuery) -> dict[str, datetime]:
    """The range of raw event times that the buckets in [start, end) cover, whole (as in the marts): `raw_start`
    and `raw_end` when the query has those bounds. Bucket bounds apply to the rows; this range on the raw
    timestamp lets Postgres prune partitions (and ClickHouse its day parts)."""
    bounds = {}
    if query.start is not None:
        start = query.bound(query.start)
        bounds["raw_start"] = (
            start if query.bucket == "hour" else datetime(start.year, start.month, start.day, tzinfo=UTC)
        )
    if query.end is not None:
        # The last bucket taken (hour < end, day < end's day) is whole.
        end = query.bound(query.end)
        bounds["raw_end"] = (
            full_hours(end, end)[0] if query.bucket == "hour" else datetime(end.year, end.month, end.day, tzinfo=UTC)
        )
    return bounds


def _raw_buckets(bucket: str, filters, where: str, breakdown: str | None, params: dict[str, Any]) -> str:
    _bind_filters(filters, params)
    bucket_expr = (
        "date_trunc('hour', e.\"timestamp\", 'UTC')"
        if bucket == "hour"
        else "(e.\"timestamp\" AT TIME ZONE 'UTC')::date"
    )
    value = f", {breakdown} AS breakdown_value" if breakdown else ""
    group = "1, 2, 3, 4" + (", 9" if breakdown else "")
    bounds = "".join(
        f' AND e."timestamp" {op} :{name}' for name, op in (("raw_start", ">="), ("raw_end", "<")) if name in params
    )
    return (
        f"(SELECT {bucket_expr} AS {bucket}, e.event_type, e.app_version, e.os_name, count(*)::bigint AS event_count,"
        " count(DISTINCT e.distinct_id)::bigint AS unique_users, count(DISTINCT e.device_id)::bigint AS unique_devices,"
        f" NULL::bigint AS unique_sessions{value} FROM events e WHERE true{bounds}{where} GROUP BY {group}) AS segmented"
    )
