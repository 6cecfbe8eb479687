"""The ClickHouse loader as a Dagster asset (eventtrack/clickhouse.py does the work; docs/scaling.md).

Defined only when CLICKHOUSE_URL is set. Each run copies the settled arrivals, applies queued
erasures and drops the days past retention; its metadata is the lag an operator watches: the newest
ingest_seq loaded, the rows written, and how far behind the newest arrival the copy is.
"""

from datetime import UTC, datetime, timedelta

from dagster import (
    AssetExecutionContext,
    AssetKey,
    DefaultScheduleStatus,
    MaterializeResult,
    ScheduleDefinition,
    asset,
    define_asset_job,
)

from eventtrack import clickhouse
from eventtrack.partitions import retention_cutoff
from orchestration.raw import EVENTS
from orchestration.resources import EventtrackResource

CLICKHOUSE_EVENTS = AssetKey(["clickhouse", "events"])


def load_cron(minutes: int) -> str:
    """CLICKHOUSE_LOAD_MINUTES as a cron schedule (pure): every n minutes, or every n/60 hours."""
    if minutes < 1:
        raise ValueError(f"CLICKHOUSE_LOAD_MINUTES must be at least 1, got {minutes}")
    if minutes < 60:
        return f"*/{minutes} * * * *"
    if minutes % 60 or minutes > 24 * 60:
        raise ValueError(f"CLICKHOUSE_LOAD_MINUTES above 59 must be whole hours up to 24, got {minutes}")
    return f"0 */{minutes // 60} * * *"


@asset(
    key=CLICKHOUSE_EVENTS,
    deps=[EVENTS],
    group_name="clickhouse",
    kinds={"clickhouse"},
    description=(
        "The raw events copied into ClickHouse by arrival (exact: each uuid once), erasures applied, "
        "days past EVENTS_RETENTION_DAYS dropped. Metadata: newest ingest_seq loaded and the lag."
    ),
)
def clickhouse_events(context: AssetExecutionContext, eventtrack: EventtrackResource) -> MaterializeResult:
    target = clickhouse.Target.parse(eventtrack.clickhouse_url or "", eventtrack.clickhouse_cluster)
    client = clickhouse.connect(target)
    now = datetime.now(UTC)
    with eventtrack.connect() as pg:
        result = clickhouse.load_arrivals(pg, client, target, timedelta(minutes=eventtrack.arrival_settle_minutes))
        (newest_arrival,) = pg.execute("SELECT max(received_at) FROM events").fetchone()
    dropped = clickhouse.drop_days_before(
        client, target, retention_cutoff(now, eventtrack.events_retention_days).date()
    )
    loaded_at = result.newest_received_at or newest_arrival
    behind = (newest_arrival - loaded_at).total_seconds() if newest_arrival and loaded_at else 0.0
    context.log.info("clickhouse: (%d, %d], %d rows, %d erasures, dropped %s", result.lo, result.hi, result.rows,
                     result.erasures, dropped)  # fmt: skip
    return MaterializeResult(
        metadata={
            "newest_ingest_seq_loaded": result.hi,
            "rows": result.rows,
            "seconds_behind_newest_arrival": round(behind, 1),
            "redone_after_failure": result.redone,
            "erasures_applied": result.erasures,
            "days_dropped": [d.isoformat() for d in dropped],
        }
    )


def clickhouse_definitions(minutes: int) -> tuple[list, list, list]:
    """(assets, jobs, schedules) of the loader; the job and its schedule share their name."""
    job = define_asset_job("clickhouse_load", selection=[clickhouse_events])
    schedule = ScheduleDefinition(
        job=job,
        cron_schedule=load_cron(minutes),
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
    )
    return [clickhouse_events], [job], [schedule]
