"""How a query over raw events runs on ClickHouse and still gives Postgres's answer while ClickHouse lags
(docs/analytics.md "Queries on ClickHouse"). Pure: the split and the SQL text; the callers do the I/O.

Postgres is the system of record. At any moment ClickHouse answers for the events it has loaded
(ingest_seq up to its watermark) of the days inside retention, less the people erased in Postgres since
its last load; everything else Postgres still stores is Postgres's to answer for. The two parts are
disjoint and together are exactly what Postgres stores:

- counts add up, so each engine counts its own part (the segmented and plain event_counts);
- distinct users, sessions and cohorts do not add up, so the arrivals ClickHouse has not loaded yet
  (a few minutes' worth: the loader runs every CLICKHOUSE_LOAD_MINUTES) are read from Postgres and sent
  along with the ClickHouse query as a parameter (`unloaded`), and ClickHouse computes over both;
- the retention cutoff is a UTC midnight, so the time before it is whole hours and days: event counts and
  aggregates take that range from Postgres's own answer (its aggregates outlive raw events); retention
  cohorts leave it out (see retention.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventtrack.clickhouse import EVENT_COLUMNS as LOADED_COLUMNS

# One arrival ClickHouse has not loaded, as sent in the `unloaded` parameter (`unloaded_rows_sql`'s columns).
UNLOADED_TYPE = (
    "Array(Tuple(DateTime64(6, 'UTC'), String, String, Nullable(String), Nullable(String), Nullable(String),"
    " Nullable(String), UInt64, String, String))"
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

    # The events ClickHouse answers for, as a condition on its events table.
    CLICKHOUSE_PART = (
        "ingest_seq <= {loaded:UInt64} AND timestamp >= {cutoff:DateTime64(6, 'UTC')}"
        " AND distinct_id NOT IN {erased:Array(String)}"
    )
    # The arrivals not loaded yet inside retention: what `unloaded_rows_sql` reads.
    UNLOADED = 'e.ingest_seq > :loaded AND e."timestamp" >= :cutoff'

    def clickhouse_params(self) -> dict[str, Any]:
        return {"loaded": self.loaded, "cutoff": self.cutoff.astimezone(UTC), "erased": self.erased}

    def postgres_params(self) -> dict[str, Any]:
        return {"loaded": self.loaded, "cutoff": self.cutoff}


def unloaded_rows_sql(bounds: str = "") -> str:
    """Postgres's arrivals that ClickHouse has not loaded yet, inside retention (binds :loaded, :cutoff and
    whatever `bounds`, ` AND ...` on alias e, binds), in `UNLOADED_TYPE`'s shape. A property's text is
    Postgres's own `->>` text, as the loader copies it (eventtrack/clickhouse.py EVENT_COLUMNS)."""
    return (
        'SELECT e."timestamp", e.event_type, e.distinct_id, e.device_id, e.session_id, e.app_version, e.os_name,'
        f" e.ingest_seq, e.properties::text, ({LOADED_COLUMNS['property_texts_json']})::text"
        f" FROM events e WHERE {Split.UNLOADED}{bounds}"
    )


def unloaded_param(rows: list[tuple]) -> list[tuple]:
    """`unloaded_rows_sql`'s rows as the `unloaded` parameter (timestamps in UTC)."""
    return [(r[0].astimezone(UTC), *r[1:]) for r in rows]


def clickhouse_events(database: str) -> str:
    """The events a query reads on ClickHouse, as a subquery with `EVENT_COLUMNS`: ClickHouse's part of the
    split, and the arrivals it has not loaded yet (the `unloaded` parameter). Binds the split's parameters."""
    columns = ", ".join(EVENT_COLUMNS)
    unloaded = ", ".join(
        [f"tupleElement(u, {i})" for i in range(1, 10)] + ["JSONExtract(tupleElement(u, 10), 'Map(String, String)')"]
    )
    return (
        f"(SELECT {columns} FROM {database}.events WHERE {Split.CLICKHOUSE_PART}"
        f" UNION ALL SELECT {unloaded} FROM (SELECT arrayJoin({{unloaded:{UNLOADED_TYPE}}}) AS u))"
    )
