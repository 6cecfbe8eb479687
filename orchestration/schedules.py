"""Jobs, each named by what it does, and their schedules: all in UTC, all on by default.

Every materialization runs as one of these jobs: the schedules', and `eventtrack catch-up`'s
(orchestration.runner.catch_up), so the runs in the UI say what they did.
"""

from __future__ import annotations

from dagster import (
    AssetsDefinition,
    AssetSelection,
    DefaultScheduleStatus,
    ScheduleDefinition,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

from orchestration.dbt import DBT_RUN_TAG, dbt_models
from orchestration.experiments import EXPERIMENT_DBT_MODELS, experiment_results
from orchestration.maintenance import event_partitions_ahead, retention, session_closure

ON = DefaultScheduleStatus.RUNNING


def build_jobs(hourly_aggregates: AssetsDefinition, daily_aggregates: AssetsDefinition) -> list:
    """The jobs, given the partitioned aggregates (orchestration.dbt.aggregate_assets)."""
    return [
        define_asset_job("hourly_aggregates", selection=[hourly_aggregates], tags=DBT_RUN_TAG),
        define_asset_job("daily_aggregates", selection=[daily_aggregates], tags=DBT_RUN_TAG),
        define_asset_job("sessions_and_staging", selection=[dbt_models], tags=DBT_RUN_TAG),
        define_asset_job("session_closure", selection=[session_closure]),
        define_asset_job("raw_maintenance", selection=[retention, event_partitions_ahead]),
        # The experiment models of the dbt project (a subset of dbt_models), then the statistics.
        define_asset_job("experiment_results", selection=AssetSelection.assets(*EXPERIMENT_DBT_MODELS, experiment_results), tags=DBT_RUN_TAG),
    ]


def build_schedules(jobs: list) -> list:
    """Each schedule is named after its job. The partitioned ones request the partition that just ended."""
    job = {j.name: j for j in jobs}
    return [
        # At minute 5: the hour that just ended (each run also rebuilds every hour that received late events).
        build_schedule_from_partitioned_job(job["hourly_aggregates"], minute_of_hour=5, default_status=ON),
        # At 01:00: yesterday, and every day touched by late events.
        build_schedule_from_partitioned_job(job["daily_aggregates"], hour_of_day=1, minute_of_hour=0, default_status=ON),
        # At 01:00 too, queued behind the daily aggregates (one dbt run at a time): fct_sessions and the views.
        ScheduleDefinition(job=job["sessions_and_staging"], cron_schedule="0 1 * * *", execution_timezone="UTC", default_status=ON),
        ScheduleDefinition(job=job["session_closure"], cron_schedule="*/10 * * * *", execution_timezone="UTC", default_status=ON),
        # At 00:30: retention, then the partitions of the coming days.
        ScheduleDefinition(job=job["raw_maintenance"], cron_schedule="30 0 * * *", execution_timezone="UTC", default_status=ON),
        # At 01:30, queued behind the 01:00 dbt runs: exposures and conversions up to now, then the statistics.
        ScheduleDefinition(job=job["experiment_results"], cron_schedule="30 1 * * *", execution_timezone="UTC", default_status=ON),
    ]
