"""The dbt project as Dagster assets.

The manifest is prepared once at setup (`orchestration.runner.prepare_dbt_manifest`,
run by install / `eventtrack up`), or on load under `dagster dev`; importing
this module only reads it.
"""

import json
import os
import shutil
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    FreshnessPolicy,
    TimeWindowPartitionsDefinition,
)
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from orchestration.dbt_cli import EventtrackDbtCli, PartialParseCache, partial_parse_key
from orchestration.partitions import daily_partitions, hourly_partitions, window_vars
from orchestration.resources import DBT_COMMAND, DBT_PROJECT_DIR, EventtrackResource, settings_dbt_vars, venv_executable

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()


def dbt_resource() -> DbtCliResource:
    return EventtrackDbtCli(project_dir=dbt_project, dbt_executable=venv_executable(DBT_COMMAND))


partial_parses = PartialParseCache(DBT_PROJECT_DIR / "target")


# Two dbt invocations never run at once: every dbt op takes a slot of this
# pool, limited to 1 in dagster.yaml (and the dbt jobs carry DBT_RUN_TAG).
DBT_POOL = "dbt"
DBT_RUN_TAG = {"eventtrack/dbt": "true"}

# With the table the volume anomalies are written to (declared by dbt, filled by orchestration/anomalies.py):
# created by the same run, so it exists before the anomalies asset first runs.
HOURLY_MODELS = "agg_events_hourly agg_event_volume_anomalies"
# With active_users_daily, the deprecated view of agg_active_users_daily's old name (marts/deprecated),
# built in the same run as its table.
DAILY_MODELS = "agg_events_daily agg_active_users_daily active_users_daily"
# The churn features, rebuilt by the weekly churn_scores job only (orchestration/churn.py); the tables the churn
# asset fills (fct_user_churn_scores, fct_churn_models) are declared by dbt_models like every other.
CHURN_FEATURE_MODELS = "int_churn_top_event_types int_user_activity_daily fct_user_churn_features"


class EventtrackTranslator(DagsterDbtTranslator):
    """Groups by dbt folder; freshness from the model's `meta.freshness_fail_hours`."""

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None) -> AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        hours = (props.get("config", {}).get("meta") or {}).get("freshness_fail_hours")
        if hours is not None:
            spec = spec.replace_attributes(
                freshness_policy=FreshnessPolicy.time_window(fail_window=timedelta(hours=hours))
            )
        return spec

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return "raw"
        fqn = dbt_resource_props.get("fqn", [])
        return fqn[1] if len(fqn) > 2 else "dbt"


translator = EventtrackTranslator()


def dbt_vars(eventtrack: EventtrackResource, context: AssetExecutionContext) -> dict[str, Any]:
    """What every run passes to dbt: the settings' vars, and the partition window if any."""
    values = settings_dbt_vars(eventtrack)
    if context.has_partition_key or context.has_partition_key_range:
        window = context.partition_time_window
        values.update(window_vars(window.start, window.end))
    return values


def _build(context: AssetExecutionContext, dbt: DbtCliResource, eventtrack: EventtrackResource):
    # dbt unit tests are for development and CI (tests/integration), not production runs: an
    # incremental model's unit tests also need the model's table to exist already.
    values = dbt_vars(eventtrack, context)
    # --no-write-json: dagster-dbt reads dbt's log stream, not its JSON artifacts (~0.6 s less).
    args = ["build", "--no-write-json", "--exclude-resource-type", "unit_test", "--vars", json.dumps(values)]
    parse_key = partial_parse_key(values, os.environ)
    target = partial_parses.invocation_dir(f"{context.op_execution_context.op.name}-{context.run.run_id[:8]}")
    partial_parses.seed(target, parse_key)
    invocation = dbt.cli(args, context=context, target_path=target)
    yield from invocation.stream()
    partial_parses.keep(target, parse_key)
    # Each invocation has its own target dir (~2 MB); Dagster has recorded the results.
    # A failed one raises above and keeps its dir for inspection.
    shutil.rmtree(invocation.target_path, ignore_errors=True)


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    exclude=f"{HOURLY_MODELS} {DAILY_MODELS} {CHURN_FEATURE_MODELS}",
    dagster_dbt_translator=translator,
    name="dbt_models",
    pool=DBT_POOL,
)
def dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, eventtrack: EventtrackResource):
    """Staging views, sessionized events and fct_sessions (rebuilt whole)."""
    yield from _build(context, dbt, eventtrack)


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    select=CHURN_FEATURE_MODELS,
    dagster_dbt_translator=translator,
    name="dbt_churn_features",
    pool=DBT_POOL,
)
def churn_feature_models(context: AssetExecutionContext, dbt: DbtCliResource, eventtrack: EventtrackResource):
    """The users' daily activity and the churn features at each weekly cut-off (rebuilt whole, weekly)."""
    yield from _build(context, dbt, eventtrack)


def aggregate_assets(start: date) -> tuple[AssetsDefinition, AssetsDefinition]:
    """The hourly and the daily aggregates, partitioned from `start` (orchestration.partitions.partitions_start).

    A run covers one partition (a schedule's tick) or a range of them (catch-up, a backfill): one dbt
    invocation over the whole window, which also rebuilds every bucket that received late events.
    """
    return (
        _partitioned_dbt_assets("dbt_hourly_aggregates", HOURLY_MODELS, hourly_partitions(start)),
        _partitioned_dbt_assets("dbt_daily_aggregates", DAILY_MODELS, daily_partitions(start)),
    )


def _partitioned_dbt_assets(name: str, select: str, partitions: TimeWindowPartitionsDefinition) -> AssetsDefinition:
    @dbt_assets(
        manifest=dbt_project.manifest_path,
        project=dbt_project,
        select=select,
        dagster_dbt_translator=translator,
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        name=name,
        pool=DBT_POOL,
    )
    def aggregates(context: AssetExecutionContext, dbt: DbtCliResource, eventtrack: EventtrackResource):
        yield from _build(context, dbt, eventtrack)

    return aggregates
