"""The code location's one entry point: assembles the pieces, defines nothing itself."""

from __future__ import annotations

from datetime import UTC, datetime

from dagster import Definitions, definitions

from eventtrack.migrate import installed_at
from eventtrack.settings import Settings
from orchestration.anomalies import volume_anomalies_asset
from orchestration.churn import churn_assets, churn_checks
from orchestration.clickhouse import clickhouse_definitions
from orchestration.dbt import aggregate_assets, churn_feature_models, dbt_models, dbt_resource
from orchestration.experiments import experiment_assets
from orchestration.funnels import funnel_assets
from orchestration.maintenance import maintenance_assets
from orchestration.partitions import partitions_start
from orchestration.raw import raw_table_specs
from orchestration.resources import EventtrackResource, export_dbt_connection_env
from orchestration.schedules import build_jobs, build_schedules


def build_definitions(settings: Settings) -> Definitions:
    export_dbt_connection_env(settings)
    installed = installed_at(settings.database_url) if settings.database_url else None
    start = partitions_start(settings.partitions_start_date, installed, datetime.now(UTC))
    hourly, daily = aggregate_assets(start)
    anomalies = volume_anomalies_asset(hourly.partitions_def)
    jobs = build_jobs(hourly, daily, anomalies)
    schedules = build_schedules(jobs, hourly, daily)
    assets = [*raw_table_specs, dbt_models, hourly, daily, anomalies, *maintenance_assets, *experiment_assets]
    assets += [*funnel_assets, churn_feature_models, *churn_assets]
    if settings.clickhouse_url:
        ch_assets, ch_jobs, ch_schedules = clickhouse_definitions(settings.clickhouse_load_minutes)
        assets, jobs, schedules = assets + ch_assets, jobs + ch_jobs, schedules + ch_schedules
    return Definitions(
        assets=assets,
        asset_checks=churn_checks,
        jobs=jobs,
        schedules=schedules,
        resources={
            "dbt": dbt_resource(),
            "eventtrack": EventtrackResource.from_settings(settings),
        },
    )


@definitions
def defs() -> Definitions:
    """Loaded by Dagster (workspace.yaml), not on import: the partitions' start may read the database."""
    return build_definitions(Settings.from_env())
