"""Jobs, each named by what it does, and their schedules: all in UTC, all on by default.

Every materialization runs as one of these jobs: the schedules', and `eventtrack catch-up`'s
(orchestration.runner.catch_up), so the runs in the UI say what they did.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from datetime import datetime

from dagster import (
    AssetKey,
    AssetPartitionStatus,
    AssetsDefinition,
    AssetSelection,
    DagsterInstance,
    DefaultScheduleStatus,
    PartitionKeyRange,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    TimeWindowPartitionsDefinition,
    define_asset_job,
)

from orchestration.churn import user_churn_scores
from orchestration.dbt import DBT_RUN_TAG, churn_feature_models, dbt_models
from orchestration.experiments import EXPERIMENT_DBT_MODELS, experiment_results
from orchestration.funnels import funnel_results
from orchestration.maintenance import event_partitions_ahead, retention, session_closure
from orchestration.partitions import partition_range_tags, ranges_to_build

ON = DefaultScheduleStatus.RUNNING
# A schedule leaves partitions being built to their run; catch-up rebuilds them (their run may have died).
BUILT_OR_RUNNING = (AssetPartitionStatus.MATERIALIZED, AssetPartitionStatus.IN_PROGRESS)
BUILT = (AssetPartitionStatus.MATERIALIZED,)


def build_jobs(
    hourly_aggregates: AssetsDefinition, daily_aggregates: AssetsDefinition, volume_anomalies: AssetsDefinition
) -> list:
    """The jobs, given the partitioned aggregates (orchestration.dbt.aggregate_assets) and the volume anomalies
    (orchestration.anomalies), partitioned as the hourly aggregates."""
    return [
        # The hours' aggregates, then their volume anomalies: each hour is judged as soon as it is counted,
        # in the same run (one run per tick; catch-up's and backfills' ranges judge every hour they build).
        define_asset_job("hourly_aggregates", selection=[hourly_aggregates, volume_anomalies], tags=DBT_RUN_TAG),
        define_asset_job("daily_aggregates", selection=[daily_aggregates], tags=DBT_RUN_TAG),
        # The models rebuilt whole (the views, fct_sessions, retention, ...), then the saved funnels' results.
        define_asset_job("sessions_and_staging", selection=[dbt_models, funnel_results], tags=DBT_RUN_TAG),
        define_asset_job("session_closure", selection=[session_closure]),
        define_asset_job("raw_maintenance", selection=[retention, event_partitions_ahead]),
        # The experiment models of the dbt project (a subset of dbt_models), then the statistics.
        define_asset_job(
            "experiment_results",
            selection=AssetSelection.assets(*EXPERIMENT_DBT_MODELS, experiment_results),
            tags=DBT_RUN_TAG,
        ),
        # The users' daily activity and churn features (dbt), then the model, its scores and its check.
        define_asset_job("churn_scores", selection=[churn_feature_models, user_churn_scores], tags=DBT_RUN_TAG),
    ]


def build_schedules(jobs: list, hourly_aggregates: AssetsDefinition, daily_aggregates: AssetsDefinition) -> list:
    """Each schedule is named after its job."""
    job = {j.name: j for j in jobs}

    def every(name: str, cron: str, execution_fn=None) -> ScheduleDefinition:
        return ScheduleDefinition(
            job=job[name], cron_schedule=cron, execution_timezone="UTC", default_status=ON, execution_fn=execution_fn
        )

    return [
        # At minute 5: the hour that just ended, and any earlier one not built yet.
        every("hourly_aggregates", "5 * * * *", unbuilt_partitions(hourly_aggregates)),
        # At 01:00: yesterday, and any earlier day not built yet.
        every("daily_aggregates", "0 1 * * *", unbuilt_partitions(daily_aggregates)),
        # At 01:00 too, queued behind the daily aggregates (one dbt run at a time): fct_sessions, the views, the
        # retention marts, then the saved funnels' results.
        every("sessions_and_staging", "0 1 * * *"),
        every("session_closure", "*/10 * * * *"),
        # At 00:30: retention, then the partitions of the coming days.
        every("raw_maintenance", "30 0 * * *"),
        # At 01:30, queued behind the 01:00 dbt runs: exposures and conversions up to now, then the statistics.
        every("experiment_results", "30 1 * * *"),
        # Mondays at 02:00, behind the daily runs: the features at the new weekly cut-off, a new model, the scores.
        every("churn_scores", "0 2 * * 1"),
    ]


def partitions_to_build(
    instance: DagsterInstance,
    partitions: TimeWindowPartitionsDefinition,
    asset_keys: Iterable[AssetKey],
    now: datetime,
    built: Collection[AssetPartitionStatus],
) -> list[PartitionKeyRange]:
    """The complete partitions whose status is not in `built` for every asset, and the last complete
    one whatever its status, as ranges of consecutive ones (orchestration.partitions.ranges_to_build)."""
    keys = partitions.get_partition_keys(current_time=now)
    done = set(keys)
    for asset_key in asset_keys:
        status = instance.get_status_by_partition(asset_key, keys, partitions) or {}
        done &= {key for key, state in status.items() if state in built}
    return ranges_to_build(keys, done)


def partition_run_request(partitions: PartitionKeyRange) -> RunRequest:
    """One run over `partitions` (the aggregates' BackfillPolicy.single_run() lets it cover a range)."""
    if partitions.start == partitions.end:
        return RunRequest(run_key=partitions.start, partition_key=partitions.start)
    return RunRequest(run_key=f"{partitions.start}...{partitions.end}", tags=partition_range_tags(partitions))


def unbuilt_partitions(assets: AssetsDefinition):
    """A tick's runs: the partition that just ended, and every earlier one neither built nor being
    built (after the daemon was down, say; Dagster itself only runs the latest missed tick)."""

    def run_requests(context: ScheduleEvaluationContext) -> Iterator[RunRequest]:
        ranges = partitions_to_build(
            context.instance, assets.partitions_def, assets.keys, context.scheduled_execution_time, BUILT_OR_RUNNING
        )
        for partitions in ranges:
            yield partition_run_request(partitions)

    return run_requests
