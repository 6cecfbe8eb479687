"""Resources of the code location, and the dbt connection derived from DATABASE_URL."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psycopg
from dagster import ConfigurableResource
from psycopg.conninfo import conninfo_to_dict

from ingest_api.settings import Settings

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"
# dbt's partial parse, kept between invocations so dbt re-parses only what changed.
PARTIAL_PARSE = "partial_parse.msgpack"


def venv_executable(name: str) -> str:
    """A console script installed next to this interpreter (the venv's bin is not always on PATH)."""
    return str(Path(sys.executable).with_name(name))


# The variables dbt_project/profiles.yml reads.
DBT_ENV_VARS = (
    "EVENTTRACK_DB_HOST",
    "EVENTTRACK_DB_PORT",
    "EVENTTRACK_DB_USER",
    "EVENTTRACK_DB_PASSWORD",
    "EVENTTRACK_DB_NAME",
    "EVENTTRACK_DB_SSLMODE",
)


def dbt_connection_env(database_url: str) -> dict[str, str]:
    """libpq URL -> the EVENTTRACK_DB_* variables of dbt's profile (pure: libpq parses, nothing connects).

    `postgresql://postgres:@/eventtrack?host=/tmp/x/pg` gives host `/tmp/x/pg`
    (a unix-socket directory, which libpq and dbt-postgres accept as a host).
    """
    parts = conninfo_to_dict(database_url)
    return {
        "EVENTTRACK_DB_HOST": str(parts.get("host") or "localhost"),
        "EVENTTRACK_DB_PORT": str(parts.get("port") or "5432"),
        "EVENTTRACK_DB_USER": str(parts.get("user") or "postgres"),
        "EVENTTRACK_DB_PASSWORD": str(parts.get("password") or ""),
        "EVENTTRACK_DB_NAME": str(parts.get("dbname") or "postgres"),
        "EVENTTRACK_DB_SSLMODE": str(parts.get("sslmode") or "prefer"),
    }


def export_dbt_connection_env(settings: Settings, environ: "os._Environ[str] | dict[str, str]" = os.environ) -> None:
    """Makes the dbt subprocesses (which inherit this process's environment) reach the app database.

    Variables already set win, so an operator can point dbt elsewhere.
    """
    if not settings.database_url:
        return
    for name, value in dbt_connection_env(settings.database_url).items():
        environ.setdefault(name, value)


class EventtrackResource(ConfigurableResource):
    """The settings the pipeline needs, and connections to the app database."""

    database_url: str
    session_timeout_minutes: int = 30
    events_retention_days: int = 90
    partitions_ahead_days: int = 7
    rejected_events_retention_days: int = 30
    aggregates_retention_days: int = 730
    retention_return_event: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "EventtrackResource":
        return cls(
            # Empty when unset: Definitions still load (e.g. to list assets), runs fail on connect.
            database_url=settings.database_url or "",
            session_timeout_minutes=settings.session_timeout_minutes,
            events_retention_days=settings.events_retention_days,
            partitions_ahead_days=settings.partitions_ahead_days,
            rejected_events_retention_days=settings.rejected_events_retention_days,
            aggregates_retention_days=settings.aggregates_retention_days,
            retention_return_event=settings.retention_return_event,
        )

    def connect(self) -> psycopg.Connection:
        if not self.database_url:
            raise RuntimeError("DATABASE_URL is not set for the Dagster code location")
        return psycopg.connect(self.database_url, autocommit=True)
