"""Admin routes over the pipeline's marts: exact event counts, and the hourly/daily aggregate rows.

The service only reads the analytics schema; dbt owns it (docs/analytics.md).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from eventtrack import clickhouse
from eventtrack.analytics.segments import (
    SegmentError,
    clickhouse_breakdown,
    clickhouse_filters_sql,
    filters_sql,
    parse_breakdown,
    parse_filters,
)
from eventtrack.errors import ApiError
from eventtrack.partitions import retention_cutoff
from ingest_api.admin.http import (
    admin_only,
    base_url,
    check_unknown_params,
    json_response,
    text_filters,
    text_param,
    time_param,
)
from ingest_api.admin.pagination import TEXT, TIMESTAMP, decode_cursor, page, parse_limit
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
    if segment and state.settings.clickhouse_url:  # raw history with properties: what ClickHouse is for
        return json_response(await clickhouse_segmented_counts(state, start, end, event_type, segment))
    async with state.engine.connect() as conn:
        return json_response(await count_events(conn, start=start, end=end, event_type=event_type, segment=segment))


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
    table, bucket = (HOURLY, "hour") if granularity == "hour" else (DAILY, "day")
    limit = parse_limit(request.query_params.get("limit"))
    cursor = decode_cursor(
        request.query_params.get("cursor"), (TIMESTAMP, TEXT, TEXT, TEXT) + ((TEXT,) if segment and segment[2] else ())
    )
    where, params = text_filters(request, ("event_type", "app_version", "os_name"))
    start, end = time_param(request, "start"), time_param(request, "end")
    if start:
        where.append(f"{bucket} >= :start")
        params["start"] = start if granularity == "hour" else start.date()
    if end:
        where.append(f"{bucket} < :end")
        params["end"] = end if granularity == "hour" else end.date()
    sort = [bucket, "event_type", "coalesce(app_version, '')", "coalesce(os_name, '')"]
    if segment and segment[2]:
        sort.append("coalesce(breakdown_value, '')")
    order = "ASC"
    if cursor:
        edge = cursor.key[0]
        params.update(
            c_b=edge if granularity == "hour" else edge.date(), c_e=cursor.key[1], c_a=cursor.key[2], c_o=cursor.key[3]
        )
        marks = ":c_b, :c_e, :c_a, :c_o"
        if len(sort) == 5:
            params["c_v"], marks = cursor.key[4], marks + ", :c_v"
        op = ">" if cursor.forward else "<"
        where.append(f"({', '.join(sort)}) {op} ({marks})")
        order = "ASC" if cursor.forward else "DESC"
    columns = f"{bucket}, event_type, app_version, os_name, event_count, unique_users, unique_devices, unique_sessions"
    source = table
    if segment:
        source, columns = (
            _raw_buckets(bucket, *segment[:3], params),
            _RAW_COLUMNS.format(bucket=bucket) + (", breakdown_value" if segment[2] else ""),
        )
    sql = f"SELECT {columns} FROM {source}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY " + ", ".join(f"{c} {order}" for c in sort) + f" LIMIT {limit + 1}"
    async with state.engine.connect() as conn:
        if not segment and not await _has_table(conn, table):
            rows: list[dict[str, Any]] = []  # the pipeline has not built it yet
        else:
            rows = [dict(r._mapping) for r in (await conn.execute(sa.text(sql), params)).all()]

    def key_of(row: dict[str, Any]) -> tuple:
        value = row[bucket]
        edge = value.isoformat() if granularity == "hour" else datetime(value.year, value.month, value.day).isoformat()
        key = (edge, row["event_type"], row["app_version"] or "", row["os_name"] or "")
        return key + (row["breakdown_value"] or "",) if "breakdown_value" in row else key

    query = {k: request.query_params.getlist(k) for k in request.query_params}
    body = page(rows, limit=limit, cursor=cursor, key_of=key_of, base_url=base_url(request), params=query)
    return json_response(body)


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


async def clickhouse_segmented_counts(
    state: AppState, start: datetime, end: datetime, event_type: str | None, segment: Segment
) -> dict[str, Any]:
    """_segmented_counts' answer with ClickHouse counting what it holds, exact at every moment: ClickHouse
    counts the loaded rows (ingest_seq up to its watermark) of the days Postgres still keeps, less the people
    erased since its last load; Postgres counts the rest (arrivals not loaded yet, and a day past retention
    that Postgres has not dropped yet). Ties in count are ordered by code point (Postgres's C collation)."""
    filters, where, breakdown, breakdown_by = segment
    client, target = await anyio.to_thread.run_sync(state.clickhouse)
    loaded, _ = await anyio.to_thread.run_sync(clickhouse.watermark, client, target)
    cutoff = retention_cutoff(datetime.now(UTC), state.settings.events_retention_days)
    params: dict[str, Any] = {"start": start, "end": end, "loaded": loaded, "cutoff": cutoff}
    event_filter = ""
    if event_type:
        params["event_type"] = event_type
        event_filter = "AND e.event_type = :event_type"
    _bind_filters(filters, params)
    async with state.engine.connect() as conn:
        erased = [
            i for (ids,) in await conn.execute(sa.text("SELECT distinct_ids FROM clickhouse_erasures")) for i in ids
        ]
        rest = (
            await conn.execute(
                sa.text(
                    _segmented_sql(event_filter, where, breakdown, " AND e.ingest_seq > :loaded", ordered=False)
                    + " UNION ALL "
                    + _segmented_sql(
                        event_filter,
                        where,
                        breakdown,
                        ' AND e.ingest_seq <= :loaded AND e."timestamp" < :cutoff',
                        ordered=False,
                    )
                ),
                params,
            )
        ).all()
    promoted = await anyio.to_thread.run_sync(clickhouse.promoted_columns, client, target)
    ch_where, ch_params = clickhouse_filters_sql(filters, promoted=promoted)
    value = clickhouse_breakdown(breakdown_by, promoted) if breakdown_by else "NULL"
    sql = (
        f"SELECT event_type, CAST({value} AS Nullable(String)) AS breakdown_value, count() AS count"
        f" FROM {target.database}.events"
        " WHERE timestamp >= {start:DateTime64(6, 'UTC')} AND timestamp < {end:DateTime64(6, 'UTC')}"
        " AND timestamp >= {cutoff:DateTime64(6, 'UTC')} AND ingest_seq <= {loaded:UInt64}"
        " AND distinct_id NOT IN {erased:Array(String)}"
        + (" AND event_type = {event_type:String}" if event_type else "")
        + f"{ch_where} GROUP BY event_type, breakdown_value"
    )
    ch_params.update(start=start, end=end, cutoff=cutoff, loaded=loaded, erased=erased, event_type=event_type or "")
    in_clickhouse = await anyio.to_thread.run_sync(lambda: client.query(sql, parameters=ch_params).result_rows)
    counts: dict[tuple[str, Any], int] = {}
    for event_type_, value_, count in [*in_clickhouse, *rest]:
        counts[(event_type_, value_)] = counts.get((event_type_, value_), 0) + int(count)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1] is None, kv[0][1] or ""))
    return _segment_answer(start, end, [(t, v, n) for (t, v), n in ordered], breakdown is not None)


# Same columns as the marts; unique_sessions is null: sessions (explicit or derived)
# are only known to the pipeline's models.
_RAW_COLUMNS = "{bucket}, event_type, app_version, os_name, event_count, unique_users, unique_devices, unique_sessions"


def _raw_buckets(bucket: str, filters, where: str, breakdown: str | None, params: dict[str, Any]) -> str:
    _bind_filters(filters, params)
    bucket_expr = (
        "date_trunc('hour', e.\"timestamp\", 'UTC')"
        if bucket == "hour"
        else "(e.\"timestamp\" AT TIME ZONE 'UTC')::date"
    )
    value = f", {breakdown} AS breakdown_value" if breakdown else ""
    group = "1, 2, 3, 4" + (", 9" if breakdown else "")
    # Bucket bounds are applied by the outer query; the range on the raw timestamp lets Postgres prune partitions.
    bounds = ""
    if "start" in params:
        bounds += ' AND e."timestamp" >= :raw_start'
        params["raw_start"] = (
            params["start"]
            if bucket == "hour"
            else datetime(params["start"].year, params["start"].month, params["start"].day, tzinfo=UTC)
        )
    if "end" in params:
        bounds += ' AND e."timestamp" < :raw_end'
        # The last bucket taken (hour < end, day < end's day) is whole, as in the marts.
        params["raw_end"] = (
            full_hours(params["end"], params["end"])[0]
            if bucket == "hour"
            else datetime(params["end"].year, params["end"].month, params["end"].day, tzinfo=UTC)
        )
    return (
        f"(SELECT {bucket_expr} AS {bucket}, e.event_type, e.app_version, e.os_name, count(*)::bigint AS event_count,"
        " count(DISTINCT e.distinct_id)::bigint AS unique_users, count(DISTINCT e.device_id)::bigint AS unique_devices,"
        f" NULL::bigint AS unique_sessions{value} FROM events e WHERE true{bounds}{where} GROUP BY {group}) AS segmented"
    )
