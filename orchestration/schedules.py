"""Jobs and their schedules. Every schedule runs in UTC and is on by default."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    define_asset_job,
    schedule,
)

from orchestration.dbt import DBT_RUN_TAG, dbt_daily_aggregates, dbt_hourly_aggregates, dbt_models
from orchestration.experiments import EXPERIMENT_DBT_MODELS, experiment_results
from orchestration.maintenance import event_partitions_ahead, retention, session_closure
from orchestration.partitions import daily_partitions, hourly_partitions, last_complete_partition_key

hourly_aggregates_job = define_asset_job(
    "hourly_aggregates", selection=AssetSelection.assets(dbt_hourly_aggregates), partitions_def=hourly_partitions, tags=DBT_RUN_TAG
)
daily_aggregates_job = define_asset_job(
    "daily_aggregates", selection=AssetSelection.assets(dbt_daily_aggregates), partitions_def=daily_partitions, tags=DBT_RUN_TAG
)
dbt_models_job = define_asset_job("sessions_and_staging", selection=AssetSelection.assets(dbt_models), tags=DBT_RUN_TAG)
session_closure_job = define_asset_job("session_closure", selection=AssetSelection.assets(session_closure))
raw_maintenance_job = define_asset_job(
    "raw_maintenance", selection=AssetSelection.assets(retention, event_partitions_ahead)
)

# The experiment models of the dbt project (a subset of dbt_models), then the statistics.
experiments_job = define_asset_job(
    "experiment_results",
    selection=AssetSelection.assets(*EXPERIMENT_DBT_MODELS, experiment_results),
    tags=DBT_RUN_TAG,
)

jobs = [hourly_aggregates_job, daily_aggregates_job, dbt_models_job, session_closure_job, raw_maintenance_job, experiments_job]


def _last_complete_partition(context: ScheduleEvaluationContext, partitions) -> RunRequest:
    key = last_complete_partition_key(partitions, context.scheduled_execution_time)
    return RunRequest(run_key=key, partition_key=key)


@schedule(
    cron_schedule="5 * * * *",
    job=hourly_aggregates_job,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
def hourly_aggregates_schedule(context: ScheduleEvaluationContext):
    """At minute 5: the hour that just ended, plus every hour that received late events."""
    return _last_complete_partition(context, hourly_partitions)


@schedule(
    cron_schedule="0 1 * * *",
    job=daily_aggregates_job,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
def daily_aggregates_schedule(context: ScheduleEvaluationContext):
    """At 01:00: yesterday (UTC), plus every day touched by late events."""
    return _last_complete_partition(context, daily_partitions)


@schedule(
    cron_schedule="0 1 * * *",
    job=dbt_models_job,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
def daily_sessions_schedule(context: ScheduleEvaluationContext):
    """At 01:00 (queued behind the daily aggregates: one dbt run at a time): fct_sessions and the views."""
    return RunRequest()


@schedule(
    cron_schedule="*/10 * * * *",
    job=session_closure_job,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
def session_closure_schedule(context: ScheduleEvaluationContext):
    return RunRequest()


@schedule(
    cron_schedule="30 0 * * *",
    job=raw_maintenance_job,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
def raw_maintenance_schedule(context: ScheduleEvaluationContext):
    """At 00:30: retention, then the partitions of the coming days."""
    return RunRequest()


@schedule(
    cron_schedule="30 1 * * *",
    job=experiments_job,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
def experiment_results_schedule(context: ScheduleEvaluationContext):
    """At 01:30 (queued behind the 01:00 dbt runs): exposures and conversions up to now, then the statistics."""
    return RunRequest()


schedules = [
    hourly_aggregates_schedule,
    daily_aggregates_schedule,
    daily_sessions_schedule,
    session_closure_schedule,
    raw_maintenance_schedule,
    experiment_results_schedule,
]
