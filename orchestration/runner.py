"""Starting the pipeline: what `eventtrack up`, `eventtrack catch-up` and install call.

- `prepare_dbt_manifest()`: `dbt parse`, once at install and at each start
  (orchestration.dbt reads the manifest; it never parses on import).
- `prepare_dagster(settings)`: the `dagster` database on the same server,
  DAGSTER_HOME under the data dir with dagster.yaml, the dbt views; returns the
  environment for the Dagster processes.
- `dagster_commands(settings)`: the webserver and the daemon (which runs the
  schedules), as argv lists to start with that environment.
- `catch_up(settings)`: runs now, in this process, what the schedules would have run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from datetime import UTC
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from eventtrack.embedded_postgres import ensure_database
from eventtrack.settings import Settings
from orchestration.resources import (
    DBT_COMMAND,
    DBT_PROJECT_DIR,
    MANIFEST,
    PARTIAL_PARSE,
    dbt_connection_env,
    settings_dbt_vars,
    venv_executable,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKSPACE_FILE = REPO_ROOT / "workspace.yaml"
DAGSTER_YAML_TEMPLATE = Path(__file__).resolve().parent / "dagster.yaml"
DAGSTER_DATABASE = "dagster"


def prepare_dbt_manifest() -> Path:
    """Parses the dbt project into dbt_project/target/manifest.json (no database needed).

    Parses into a scratch dir, then renames the files into place: a process
    reading the manifest (or another parse running at the same time) never
    sees a half-written file.
    """
    target = DBT_PROJECT_DIR / "target"
    scratch = _scratch_dir("parse")
    try:
        if (target / PARTIAL_PARSE).exists():  # lets dbt re-parse only what changed
            shutil.copyfile(target / PARTIAL_PARSE, scratch / PARTIAL_PARSE)
        _run_dbt(["parse", "--quiet"], scratch)
        for name in (PARTIAL_PARSE, MANIFEST):
            os.replace(scratch / name, target / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target / MANIFEST


def _scratch_dir(label: str) -> Path:
    scratch = DBT_PROJECT_DIR / "target" / f"{label}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    scratch.mkdir(parents=True)
    return scratch


def _run_dbt(command: list[str], scratch: Path, env: dict[str, str] | None = None) -> None:
    """One dbt command on the project, its artifacts and logs in `scratch`."""
    project = ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    output = ["--target-path", str(scratch), "--log-path", str(scratch)]
    subprocess.run(
        [venv_executable(DBT_COMMAND), *command, *project, *output], check=True, cwd=DBT_PROJECT_DIR, env=env
    )


def dagster_home(settings: Settings) -> Path:
    return settings.data_dir / "dagster"


def dagster_database_url(database_url: str) -> str:
    """The app's libpq URL with the database swapped for Dagster's own (same server, same credentials).

    As a SQLAlchemy URL naming psycopg2: dagster-postgres sends `NOTIFY channel, %s`,
    which psycopg 3 (SQLAlchemy 2.1's default driver) binds server-side and Postgres refuses.
    """
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(scheme="postgresql+psycopg2", path=f"/{DAGSTER_DATABASE}"))


def dagster_environment(settings: Settings) -> dict[str, str]:
    """Variables the Dagster processes need on top of the inherited environment."""
    url = settings.require_database_url()
    return {
        "DATABASE_URL": url,
        "DAGSTER_HOME": str(dagster_home(settings)),
        "DAGSTER_PG_URL": dagster_database_url(url),
        **dbt_connection_env(url),
    }


# Every view of the project: the staging views the jobs read, and the views built on them; not the
# deprecated views of the marts' old names (marts/deprecated), which need their marts built first.
DBT_VIEWS = "path:models/staging+,config.materialized:view"
DEPRECATED_VIEWS = "path:models/marts/deprecated"


def build_dbt_views(settings: Settings) -> None:
    """Creates (or updates) the dbt views, so every job finds its upstream views from the first run.

    Only the daily `sessions_and_staging` job rebuilds them afterwards, all together: Postgres drops
    a view's dependent views when dbt replaces it, so a job that rebuilt the staging views alone
    would remove the views on top of them until the next daily run.
    """
    scratch = _scratch_dir("views")
    try:
        env = {**os.environ, **dbt_connection_env(settings.require_database_url())}
        values = json.dumps(settings_dbt_vars(settings))
        _run_dbt(
            [
                "run",
                "--quiet",
                "--no-write-json",
                "--select",
                DBT_VIEWS,
                "--exclude",
                DEPRECATED_VIEWS,
                "--vars",
                values,
            ],
            scratch,
            env,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def prepare_dagster(settings: Settings) -> dict[str, str]:
    """Manifest, the dbt views, and Dagster's instance. Returns the environment for the processes."""
    prepare_dbt_manifest()
    build_dbt_views(settings)
    return prepare_dagster_instance(settings)


def prepare_dagster_instance(settings: Settings) -> dict[str, str]:
    """Dagster's database and DAGSTER_HOME/dagster.yaml. Returns the environment for the processes."""
    ensure_database(settings.require_database_url(), DAGSTER_DATABASE)
    home = dagster_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DAGSTER_YAML_TEMPLATE, home / "dagster.yaml")
    return dagster_environment(settings)


def dagster_commands(settings: Settings) -> dict[str, list[str]]:
    """The long-running Dagster processes, by name; start them from the repo root with prepare_dagster()'s env."""
    workspace = ["-w", str(WORKSPACE_FILE)]
    return {
        "dagster-webserver": [
            venv_executable("dagster-webserver"),
            *workspace,
            "-h",
            settings.dagster_host,
            "-p",
            str(settings.dagster_port),
        ],
        "dagster-daemon": [venv_executable("dagster-daemon"), "run", *workspace],
    }


# What catch-up runs, in order. `experiment_results` only runs its statistics: sessions_and_staging
# has just built the experiment models it reads.
# `churn_scores` after sessions_and_staging, which declares the tables it fills.
CATCH_UP_JOBS = ("session_closure", "raw_maintenance", "sessions_and_staging", "experiment_results", "churn_scores")
PARTITIONED_JOBS = ("hourly_aggregates", "daily_aggregates")


def catch_up(settings: Settings) -> bool:
    """Runs now what the schedules would have run: maintenance, the views and fct_sessions, the
    experiment statistics, the churn model and scores, then the aggregates' partitions not materialized yet, each run of
    consecutive ones as one run, and always the latest complete hour and day (each run also
    rebuilds every bucket that received events since the last one). Every run is one of the
    named jobs, so the UI shows them as such and every partition up to the last complete one as built.

    Runs in this process against the instance of DAGSTER_HOME (call prepare_dagster first and
    export its environment). Returns True when everything succeeded.
    """
    from datetime import datetime

    from dagster import DagsterInstance, RunRequest

    from orchestration.definitions import build_definitions
    from orchestration.experiments import experiment_results
    from orchestration.schedules import BUILT, partition_run_request, partitions_to_build

    defs = build_definitions(settings)
    instance = DagsterInstance.get()
    now = datetime.now(UTC)
    runs = [(name, RunRequest()) for name in CATCH_UP_JOBS]
    for name in PARTITIONED_JOBS:
        job = defs.resolve_job_def(name)
        ranges = partitions_to_build(instance, job.partitions_def, job.asset_layer.selected_asset_keys, now, BUILT)
        runs += [(name, partition_run_request(partitions)) for partitions in ranges]
    ok = True
    for name, request in runs:
        result = defs.resolve_job_def(name).execute_in_process(
            instance=instance,
            partition_key=request.partition_key,
            tags=request.tags,
            asset_selection=[experiment_results.key] if name == "experiment_results" else None,
            raise_on_error=False,
        )
        ok = ok and result.success
    return ok
