"""Resolving which Postgres to use, and URL forms for each client library."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy.exc import InterfaceError, OperationalError

from eventtrack.embedded_postgres import EmbeddedPostgres, running_url
from eventtrack.settings import Settings

# What database work raises while the database is away: the API answers 503 (not 500) and readers retry.
DATABASE_DOWN = (OperationalError, InterfaceError, TimeoutError, ConnectionError)


def sqlalchemy_url(database_url: str) -> str:
    """libpq URI → SQLAlchemy URL with the psycopg 3 driver."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", database_url)


def embedded_pgdata(settings: Settings) -> Path:
    return settings.data_dir / "pg"


def start_embedded(settings: Settings) -> EmbeddedPostgres:
    return EmbeddedPostgres(embedded_pgdata(settings)).start()


def connectable_url(settings: Settings) -> str | None:
    """DATABASE_URL, else the URI of the embedded server if it is running (None if not: it is not started here)."""
    return settings.database_url or running_url(embedded_pgdata(settings))
