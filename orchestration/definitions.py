"""The code location's one entry point: assembles the pieces, defines nothing itself."""

from __future__ import annotations

from dagster import Definitions

from ingest_api.settings import Settings
from orchestration.dbt import dbt_daily_aggregates, dbt_hourly_aggregates, dbt_models, dbt_resource
from orchestration.experiments import experiment_assets
from orchestration.maintenance import maintenance_assets
from orchestration.raw import raw_table_specs
from orchestration.resources import EventtrackResource, export_dbt_connection_env
from orchestration.schedules import jobs, schedules


def build_definitions(settings: Settings) -> Definitions:
    export_dbt_connection_env(settings)
    return Definitions(
        assets=[*raw_table_specs, dbt_models, dbt_hourly_aggregates, dbt_daily_aggregates, *maintenance_assets, *experiment_assets],
        jobs=jobs,
        schedules=schedules,
        resources={
            "dbt": dbt_resource(),
            "eventtrack": EventtrackResource.from_settings(settings),
        },
    )


defs = build_definitions(Settings.from_env())
