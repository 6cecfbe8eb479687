"""Resources of the code location, and the dbt connection derived from DATABASE_URL."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import psycopg
from dagster import ConfigurableResource
from psycopg.conninfo import conninfo_to_dict

from eventtrack.settings import Settings

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"
# dbt's partial parse, kept between invocations so dbt re-parses only what changed.
PARTIAL_PARSE = "partial_parse.msgpack"
MANIFEST = "manifest.json"


def dbt_manifest() -> dict:
    """The parsed dbt project (written by `runner.prepare_dbt_manifest` at setup), for what Python reads of the
    models' yml. Here, not in orchestration.dbt: importing that module builds the dbt assets from the manifest."""
    return json.loads((DBT_PROJECT_DIR / "target" / MANIFEST).read_text())


def dbt_model_node(model: str) -> dict[str, Any]:
    """A model of the manifest, by name."""
    (node,) = (n for n in dbt_manifest()["nodes"].values() if n["resource_type"] == "model" and n["name"] == model)
    return node


def dbt_relation(model: str) -> str:
    """`schema.table` of a model (its schema and alias in the manifest): a table's name is written once, in dbt."""
    node = dbt_model_node(model)
    return f"{node['schema']}.{node['alias']}"


def dbt_model_columns(model: str) -> list[str]:
    """The columns a model's yml declares, in order (for a table dbt declares and Python fills)."""
    return list(dbt_model_node(model)["columns"])


def replace_declared_table(
    conn: psycopg.Connection,
    model: str,
    rows: Iterable[Mapping[str, Any]],
    where: str = "true",
    params: Mapping[str, Any] | None = None,
) -> None:
    """Replaces the rows of a table dbt declares (macros/declared_table.sql) that match `where` (every
    row by default) with `rows`, in one transaction: readers see the previous rows or the new ones, never
    a mix. The table's name and columns are the model's (its yml), so they are written once."""
    with conn.transaction():
        conn.execute(f"DELETE FROM {dbt_relation(model)} WHERE {where}", params)
        append_to_declared_table(conn, model, rows)


def append_to_declared_table(conn: psycopg.Connection, model: str, rows: Iterable[Mapping[str, Any]]) -> None:
    """Adds `rows` to a table dbt declares, by the columns of the model's yml."""
    table, columns = dbt_relation(model), dbt_model_columns(model)
    with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


# What runs every dbt command of the pipeline: `dbt` itself, answered by a process that has dbt imported
# already (orchestration/dbt_server.py; ~1.5 s less per command).
DBT_COMMAND = "eventtrack-dbt"


def venv_executable(name: str) -> str:
    """A console script installed next to this interpreter (the venv's bin is not always on PATH)."""
    return str(Path(sys.executable).with_name(name))


# The URL's parts -> the variables dbt_project/profiles.yml reads (which holds their defaults).
DBT_ENV_VARS = {
    "host": "EVENTTRACK_DB_HOST",
    "port": "EVENTTRACK_DB_PORT",
    "user": "EVENTTRACK_DB_USER",
    "password": "EVENTTRACK_DB_PASSWORD",
    "dbname": "EVENTTRACK_DB_NAME",
    "sslmode": "EVENTTRACK_DB_SSLMODE",
}


def dbt_connection_env(database_url: str) -> dict[str, str]:
    """libpq URL -> the EVENTTRACK_DB_* variables of dbt's profile (pure: libpq parses, nothing connects).

    Only the parts the URL names: dbt_project/profiles.yml has libpq's defaults for the others (a
    missing database name is the user's, as for the app's own connections).
    `postgresql://postgres:@/eventtrack?host=/tmp/x/pg` gives host `/tmp/x/pg`
    (a unix-socket directory, which libpq and dbt-postgres accept as a host).
    """
    parts = conninfo_to_dict(database_url)
    return {name: str(parts[part]) for part, name in DBT_ENV_VARS.items() if parts.get(part) not in (None, "")}


def export_dbt_connection_env(settings: Settings, environ: MutableMapping[str, str] = os.environ) -> None:
    """Makes the dbt subprocesses (which inherit this process's environment) reach the app database.

    Variables already set win, so an operator can point dbt elsewhere.
    """
    if not settings.database_url:
        return
    for name, value in dbt_connection_env(settings.database_url).items():
        environ.setdefault(name, value)


def settings_dbt_vars(settings: Settings | EventtrackResource) -> dict[str, Any]:
    """The dbt vars that come from the settings, for every dbt invocation (dbt_project.yml has no defaults for them)."""
    values: dict[str, Any] = {
        "session_timeout_minutes": settings.session_timeout_minutes,
        "arrival_settle_minutes": settings.arrival_settle_minutes,
        "churn_horizon_days": settings.churn_horizon_days,
        "churn_cutoff_weeks": settings.churn_cutoff_weeks,
    }
    if settings.retention_return_event:
        values["retention_return_event"] = settings.retention_return_event
    return values


class EventtrackResource(ConfigurableResource):
    """The settings the pipeline needs, and connections to the app database."""

    database_url: str
    # Defaults are the settings' own (a resource built without from_settings, e.g. in a test).
    session_timeout_minutes: int = Settings.session_timeout_minutes
    events_retention_days: int = Settings.events_retention_days
    partitions_ahead_days: int = Settings.partitions_ahead_days
    rejected_events_retention_days: int = Settings.rejected_events_retention_days
    aggregates_retention_days: int = Settings.aggregates_retention_days
    retention_return_event: str | None = Settings.retention_return_event
    arrival_settle_minutes: int = Settings.arrival_settle_minutes
    anomaly_threshold: float = Settings.anomaly_threshold
    anomaly_min_expected_events: float = Settings.anomaly_min_expected_events
    clickhouse_url: str | None = Settings.clickhouse_url
    clickhouse_cluster: str | None = Settings.clickhouse_cluster
    churn_horizon_days: int = Settings.churn_horizon_days
    churn_cutoff_weeks: int = Settings.churn_cutoff_weeks
    churn_auc_floor: float = Settings.churn_auc_floor

    @classmethod
    def from_settings(cls, settings: Settings) -> EventtrackResource:
        # Each field is the setting of its name: the fields above are the one list of what the pipeline reads.
        values = {name: getattr(settings, name) for name in cls.model_fields}
        # Empty when unset: Definitions still load (e.g. to list assets), runs fail on connect.
        values["database_url"] = settings.database_url or ""
        return cls(**values)

    def connect(self) -> psycopg.Connection:
        if not self.database_url:
            raise RuntimeError("DATABASE_URL is not set for the Dagster code location")
        return psycopg.connect(self.database_url, autocommit=True)
