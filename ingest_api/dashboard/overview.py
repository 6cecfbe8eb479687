"""The overview page's numbers: read from the pipeline's marts (analytics schema) and two raw tables; the events
per hour and per day through the admin query function (ClickHouse when it is configured).

Every mart may be missing (the pipeline has not run yet): its section is then None.
Series are filled with zeros for buckets without a row (pure helpers below).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ingest_api.admin.aggregates import events_per_bucket
from ingest_api.state import AppState

HOURS_SHOWN = 48
DAYS_SHOWN = 30

_ACTIVE_USERS = sa.text(
    "SELECT day, dau, wau, mau FROM analytics.agg_active_users_daily WHERE day >= :since ORDER BY day"
)
# Sessions by their UTC start day; the median over ended sessions (open ones have no duration yet).
_SESSIONS_PER_DAY = sa.text(
    """
    SELECT (started_at AT TIME ZONE 'UTC')::date AS day, count(*) AS sessions,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_seconds) AS median_seconds
    FROM analytics.fct_sessions
    WHERE started_at >= :since
    GROUP BY 1 ORDER BY 1
    """
)
# event_uuids has one row per accepted event and an index on received_at (events is
# partitioned by event time, so counting arrivals there would scan every partition).
_ACCEPTED_SINCE = sa.text("SELECT count(*) FROM event_uuids WHERE received_at >= :since")
_REJECTED_SINCE = sa.text("SELECT count(*) FROM rejected_events WHERE received_at >= :since")


@dataclass(frozen=True)
class Series:
    labels: list[str]
    values: list[float]


def hour_buckets(now: datetime, hours: int) -> list[datetime]:
    """The last `hours` UTC hours up to and including the current one, oldest first."""
    current = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=h) for h in range(hours - 1, -1, -1)]


def day_buckets(now: datetime, days: int) -> list[date]:
    today = now.astimezone(UTC).date()
    return [today - timedelta(days=d) for d in range(days - 1, -1, -1)]


def fill(buckets: list[Any], rows: dict[Any, float], label, default: float | None = 0) -> Series:
    """One value per bucket; `default` where the mart has no row (0 for counts: nothing happened)."""
    return Series([label(b) for b in buckets], [rows.get(b, default) for b in buckets])


def hour_label(hour: datetime) -> str:
    return hour.strftime("%d %H:00")


def day_label(day: date) -> str:
    return day.strftime("%m-%d")


async def _exists(conn: AsyncConnection, table: str) -> bool:
    return (await conn.execute(sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table})).scalar_one()


async def load(state: AppState, conn: AsyncConnection, now: datetime) -> dict[str, Any]:
    hours = hour_buckets(now, HOURS_SHOWN)
    days = day_buckets(now, DAYS_SHOWN)
    out: dict[str, Any] = {"per_hour": None, "per_day": None, "active": None, "sessions": None}
    # The admin API's query function: on ClickHouse when it is configured.
    per_hour = await events_per_bucket(state, "hour", hours[0])
    if per_hour is not None:
        out["per_hour"] = fill(hours, per_hour, hour_label)
    per_day = await events_per_bucket(state, "day", days[0])
    if per_day is not None:
        out["per_day"] = fill(days, per_day, day_label)
    if await _exists(conn, "analytics.agg_active_users_daily"):
        rows = (await conn.execute(_ACTIVE_USERS, {"since": days[0]})).all()
        by_day = {r.day: r for r in rows}
        out["active"] = {
            "latest": rows[-1] if rows else None,
            "dau": fill(days, {d: r.dau for d, r in by_day.items()}, day_label),
        }
    if await _exists(conn, "analytics.fct_sessions"):
        since = datetime.combine(days[0], datetime.min.time(), UTC)
        rows = (await conn.execute(_SESSIONS_PER_DAY, {"since": since})).all()
        out["sessions"] = {
            "count": fill(days, {r.day: r.sessions for r in rows}, day_label),
            "median_minutes": fill(
                days,
                {r.day: round(r.median_seconds / 60, 1) for r in rows if r.median_seconds is not None},
                day_label,
                None,
            ),
        }
    hour_ago = now - timedelta(hours=1)
    out["accepted_last_hour"] = (await conn.execute(_ACCEPTED_SINCE, {"since": hour_ago})).scalar_one()
    out["rejected_last_hour"] = (await conn.execute(_REJECTED_SINCE, {"since": hour_ago})).scalar_one()
    return out
