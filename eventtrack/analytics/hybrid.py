"""How a query over raw events runs on ClickHouse and still gives Postgres's answer while ClickHouse lags
(docs/analytics.md "Queries on ClickHouse"). Pure: the split and the SQL text; the callers do the I/O.

Postgres is the system of record. At any moment ClickHouse answers for the events it has loaded
(ingest_seq up to its watermark) of the days inside retention, less the events of people erased in
Postgres since its last load (what they sent after the erasure stays); everything else Postgres still stores is Postgres's to answer for. The two parts are
disjoint and together are exactly what Postgres stores:

- counts add up, so each engine counts its own part (the segmented and plain event_counts);
- distinct users, sessions and cohorts do not add up, so the arrivals ClickHouse has not loaded yet
  (a few minutes' worth: the loader runs every CLICKHOUSE_LOAD_MINUTES) are read from Postgres and sent
  along with the ClickHouse query (`clickhouse_events`), and ClickHouse computes over both;
- the retention cutoff is a UTC midnight, so the time before it is whole hours and days: event counts and
  aggregates take that range from Postgres's own answer (its aggregates outlive raw events); retention
  cohorts leave it out (see retention.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from eventtrack.clickhouse import EVENT_COLUMNS as LOADED_COLUMNS

DEFAULT_MAX_QUERY_SIZE = 262_144  # ClickHouse's default
# The instants ClickHouse's Date and DateTime64 hold. Every event it holds is inside them (retention), so a
# bound clamped to them selects the same events; an API bound may be any instant Postgres takes (year 1).
_CLICKHOUSE_TIMES = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2149, 6, 1, tzinfo=UTC))

# The arrivals ClickHouse has not loaded, as written into its query (`unloaded_rows_sql`'s columns).
_UNLOADED_STRUCTURE = (
    "timestamp DateTime64(6, 'UTC'), event_type String, distinct_id String, device_id Nullable(String),"
    " session_id Nullable(String), app_version Nullable(String), os_name Nullable(String), ingest_seq UInt64,"
    " properties String, property_texts String"
)
# The columns of `clickhouse_events`, in order.
EVENT_COLUMNS = (
    "timestamp",
    "event_type",
    "distinct_id",
    "device_id",
    "session_id",
    "app_version",
    "os_name",
    "ingest_seq",
    "properties",
    "property_text",
)


@dataclass(frozen=True)
class Split:
    """Which events ClickHouse answers for (the rest is Postgres's)."""

    loaded: int  # ClickHouse's watermark: it holds every event with ingest_seq <= loaded
    cutoff: datetime  # the retention cutoff: older events are Postgres's to answer for while it keeps them
    erased: list[str]  # people erased in Postgres whose rows ClickHouse still holds (clickhouse_erasures)
    # Of those people, the events they sent after their erasure that ClickHouse has loaded (Postgres keeps them).
    kept: tuple[str, ...] = ()

    # The events ClickHouse answers for, as a condition on its events table.
    CLICKHOUSE_PART = (
        "ingest_seq <= {loaded:UInt64} AND timestamp >= {cutoff:DateTime64(6, 'UTC')}"
        " AND (distinct_id NOT IN {erased:Array(String)} OR uuid IN {kept:Array(UUID)})"
    )
    # The arrivals not loaded yet inside retention: what `unloaded_rows_sql` reads.
    UNLOADED = 'e.ingest_seq > :loaded AND e."timestamp" >= :cutoff'

    def clickhouse_params(self) -> dict[str, Any]:
        return {
            "loaded": self.loaded,
            "cutoff": self.cutoff.astimezone(UTC),
            "erased": self.erased,
            "kept": list(self.kept),
        }

    def postgres_params(self) -> dict[str, Any]:
        return {"loaded": self.loaded, "cutoff": self.cutoff}


def clickhouse_time(value: datetime) -> datetime:
    """A time bound as a ClickHouse parameter: in UTC, clamped to the instants ClickHouse holds."""
    first, last = _CLICKHOUSE_TIMES
    return min(max(value, first), last).astimezone(UTC)


def unloaded_rows_sql(bounds: str = "") -> str:
    """Postgres's arrivals that ClickHouse has not loaded yet, inside retention (binds :loaded, :cutoff and
    whatever `bounds`, ` AND ...` on alias e, binds), for `unloaded_data`. A property's text is
    Postgres's own `->>` text, as the loader copies it (eventtrack/clickhouse.py EVENT_COLUMNS)."""
    return (
        'SELECT e."timestamp", e.event_type, e.distinct_id, e.device_id, e.session_id, e.app_version, e.os_name,'
        f" e.ingest_seq, e.properties::text, ({LOADED_COLUMNS['property_texts_json']})::text"
        f" FROM events e WHERE {Split.UNLOADED}{bounds}"
    )


def unloaded_data(rows: list[tuple]) -> str:
    """`unloaded_rows_sql`'s rows as JSON lines (timestamps in UTC), what `clickhouse_events` reads."""
    return "\n".join(
        orjson.dumps([r[0].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"), *r[1:]]).decode() for r in rows
    )


def sql_string(text: str) -> str:
    """A ClickHouse string literal of `text`."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def clickhouse_events(database: str, unloaded: str) -> str:
    """The events a query reads on ClickHouse, as a subquery with `EVENT_COLUMNS`: ClickHouse's part of the
    split (binds the split's parameters), and the arrivals it has not loaded yet (`unloaded_data`).

    The arrivals are written into the query text, which goes in the request's body: as a parameter they
    would be a form field, which a ClickHouse server limits (http_max_field_value_size, 128 KiB), and a few
    minutes of a busy install's arrivals are megabytes. The query's `max_query_size` must allow for them
    (`query_settings`)."""
    loaded = f"SELECT {', '.join(EVENT_COLUMNS)} FROM {database}.events WHERE {Split.CLICKHOUSE_PART}"
    if not unloaded:
        return f"({loaded})"
    columns = ", ".join(EVENT_COLUMNS[:-1]) + ", JSONExtract(property_texts, 'Map(String, String)')"
    rows = f"format(JSONCompactEachRow, {sql_string(_UNLOADED_STRUCTURE)}, {sql_string(unloaded)})"
    return f"({loaded} UNION ALL SELECT {columns} FROM {rows})"


def query_settings(sql: str) -> dict[str, Any]:
    """The settings a query with the unloaded arrivals in its text needs: a `max_query_size` above its length."""
    return {"max_query_size": max(DEFAULT_MAX_QUERY_SIZE, len(sql.encode()) + 1024)}
