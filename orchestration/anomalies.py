"""Volume anomalies: each hour's count of each event type against the same hour of the previous weeks.

Runs in the `hourly_aggregates` job, downstream of the hourly aggregates and partitioned like them:
each run judges the hours of its partitions (complete hours: a partition is built once it has ended)
with orchestration/anomaly_stats.py over the counts of analytics.agg_events_hourly, and replaces
those hours' rows of analytics.agg_event_volume_anomalies (a table dbt declares:
marts/agg_event_volume_anomalies.sql and its yml) in one transaction, so a re-run is idempotent. Its check
`no_new_volume_anomalies` warns in the Dagster UI when the hours just judged hold an anomaly.
"""

from collections import defaultdict
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import psycopg
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    MaterializeResult,
    TimeWindowPartitionsDefinition,
    asset,
)

from orchestration.anomaly_stats import BASELINE_WEEKS, POOLED_HOURS, WEEK, judge_hours
from orchestration.resources import EventtrackResource, dbt_relation, replace_declared_table

ANOMALIES = AssetKey(["analytics", "agg_event_volume_anomalies"])
HOURLY_AGGREGATES = AssetKey(["analytics", "agg_events_hourly"])
# The table itself is a dbt model (marts/agg_event_volume_anomalies.sql), built with the hourly aggregates.
TABLE_DEFINITION = AssetKey(["analytics", "agg_event_volume_anomalies_table"])
CHECK = "no_new_volume_anomalies"
HOUR = timedelta(hours=1)
CHECK_LISTED = 20  # anomalies listed in the check's metadata


def hourly_counts(conn: psycopg.Connection, start: datetime, end: datetime) -> dict[str, dict[datetime, int]]:
    """Events per event type and UTC hour in [start, end), summed over the aggregate's other dimensions."""
    counts: dict[str, dict[datetime, int]] = defaultdict(dict)
    for hour, event_type, count in conn.execute(
        f"SELECT hour, event_type, sum(event_count)::bigint FROM {dbt_relation('agg_events_hourly')}"
        " WHERE hour >= %(start)s AND hour < %(end)s GROUP BY 1, 2",
        {"start": start, "end": end},
    ):
        counts[event_type][hour.astimezone(UTC)] = count
    return counts


def judged_rows(
    counts: dict[str, dict[datetime, int]], first: datetime, last: datetime, eventtrack: EventtrackResource
) -> list[dict]:
    """The rows of agg_event_volume_anomalies for the hours [first, last) of every event type in `counts`. A type's
    history starts at its first hour in `counts` (a type seen for the first time has none before)."""
    hours = [first + n * HOUR for n in range(int((last - first) / HOUR))]
    judged_at = datetime.now(UTC)
    rows = []
    for event_type, by_hour in sorted(counts.items()):
        verdicts = judge_hours(
            by_hour,
            hours,
            min(by_hour),
            threshold=eventtrack.anomaly_threshold,
            min_expected=eventtrack.anomaly_min_expected_events,
        )
        rows += [
            {**asdict(v), "event_type": event_type, "threshold": eventtrack.anomaly_threshold, "judged_at": judged_at}
            for v in verdicts
        ]
    return rows


def check_result(rows: list[dict]) -> AssetCheckResult:
    """Passes when the hours just judged hold no anomaly; else a warning listing them, worst first."""
    anomalies = sorted((r for r in rows if r["severity"]), key=lambda r: -abs(r["score"]))
    return AssetCheckResult(
        check_name=CHECK,
        passed=not anomalies,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "anomalies": len(anomalies),
            "high": sum(r["severity"] == "high" for r in anomalies),
            "worst": "\n".join(
                f"{r['hour']:%Y-%m-%d %H:00}Z {r['event_type']}: {r['direction']} ({r['severity']}),"
                f" {r['actual']} events for {r['expected']:g} expected"
                for r in anomalies[:CHECK_LISTED]
            ),
        },
    )


def volume_anomalies_asset(partitions: TimeWindowPartitionsDefinition) -> AssetsDefinition:
    """The anomalies asset, partitioned as the hourly aggregates (orchestration.dbt.aggregate_assets)."""

    @asset(
        key=ANOMALIES,
        deps=[HOURLY_AGGREGATES, TABLE_DEFINITION],
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        group_name="marts",
        kinds={"python", "postgres"},
        check_specs=[
            AssetCheckSpec(CHECK, asset=ANOMALIES, description="The hours just judged hold no volume anomaly.")
        ],
        description=(
            "Each complete hour's events per type against the median of the same hour of the week over the "
            "previous 4 weeks; anomalies outside the band, with a direction and a severity (docs/analytics.md, "
            "Volume anomalies)."
        ),
    )
    def agg_event_volume_anomalies(context: AssetExecutionContext, eventtrack: EventtrackResource) -> MaterializeResult:
        window = context.partition_time_window
        first, last = window.start.astimezone(UTC), window.end.astimezone(UTC)
        with eventtrack.connect() as conn:
            counts = hourly_counts(conn, first - BASELINE_WEEKS * WEEK - POOLED_HOURS // 2 * HOUR, last)
            rows = judged_rows(counts, first, last, eventtrack)
            replace_declared_table(
                conn,
                "agg_event_volume_anomalies",
                rows,
                "hour >= %(first)s AND hour < %(last)s",
                {"first": first, "last": last},
            )
        result = check_result(rows)
        context.log.info(
            "volume anomalies: %d hours judged in [%s, %s), %d anomalies",
            len(rows),
            first.isoformat(),
            last.isoformat(),
            result.metadata["anomalies"].value,
        )
        return MaterializeResult(metadata={"judged": len(rows)}, check_results=[result])

    return agg_event_volume_anomalies
