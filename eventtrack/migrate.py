"""Versioned SQL migrations: `migrations/NNNN_name.sql`, applied once each, in order.

Idempotent: run it on every start. An advisory lock keeps two starting
processes from applying the same file twice.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from eventtrack.partitions import event_partition_window

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_LOCK_KEY = 7_311_042_001  # arbitrary, constant: "eventtrack migrations"


def migration_files() -> list[Path]:
    return sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))


def migrate(database_url: str, retention_days: int, ahead_days: int, now: datetime | None = None) -> list[str]:
    """Applies pending migrations and creates the event partitions of the window. Returns applied versions."""
    applied: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for path in migration_files():
                version = path.stem
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(path.read_text())
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                log.info("applied migration %s", version)
                applied.append(version)
            first, last = event_partition_window(now or datetime.now(UTC), retention_days, ahead_days)
            conn.execute("SELECT ensure_event_partitions(%s, %s)", (first, last))
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied


def installed_at(database_url: str) -> datetime | None:
    """When this database was installed: its first migration; None before any."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        (exists,) = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if not exists:
            return None
        (first,) = conn.execute("SELECT min(applied_at) FROM schema_migrations").fetchone()
        return first
