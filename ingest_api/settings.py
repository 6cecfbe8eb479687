"""The one place that reads the environment.

Every other module receives a `Settings` value; defaults run out of the box.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from ingest_api.privacy.ip import parse_truncation

KIB = 1024
MIB = 1024 * 1024


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


def _date(env: Mapping[str, str], name: str) -> date | None:
    raw = (env.get(name) or "").strip()
    if raw == "":
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a date (YYYY-MM-DD), got {raw!r}") from exc


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class Settings:
    # Where the embedded Postgres (and later Dagster's home) keeps its files.
    data_dir: Path = Path(".data")
    # None means: start the embedded server under data_dir.
    database_url: str | None = None

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = 1
    dagster_port: int = 3000
    dagster_host: str = "127.0.0.1"
    # `eventtrack up` restarts a service that died after this delay, doubled at each
    # quick death in a row up to the maximum (docs/operations.md).
    restart_backoff_seconds: float = 1.0
    restart_backoff_max_seconds: float = 60.0

    events_retention_days: int = 90
    partitions_ahead_days: int = 7
    # Pipeline: a session with no event for this long is closed ('timeout'),
    # and events without a session_id are split into sessions at such gaps.
    session_timeout_minutes: int = 30
    aggregates_retention_days: int = 730
    rejected_events_retention_days: int = 30
    # Retention marts: the event that counts as "came back"; None: any event.
    retention_return_event: str | None = None
    # First day of the aggregates' Dagster partitions; None: the day before the installation
    # (orchestration.partitions.partitions_start).
    partitions_start_date: date | None = None

    max_capture_body_bytes: int = 1 * MIB
    max_batch_body_bytes: int = 20 * MIB
    max_event_bytes: int = 64 * KIB
    max_batch_events: int = 1000
    max_properties_depth: int = 32
    # Raw payloads kept in the dead-letter table are cut to this size.
    dead_letter_payload_bytes: int = 64 * KIB
    # A corrected timestamp further than this in the future is clamped.
    max_future_skew_hours: int = 23

    # Group commit: how many rows one transaction takes at most.
    group_commit_max_rows: int = 20_000
    # Backpressure: rows waiting for the writer before new writes get 503.
    max_queued_rows: int = 200_000
    # A request never waits longer than this for its commit before 503.
    commit_timeout_seconds: float = 5.0
    db_connect_timeout_seconds: float = 2.0
    retry_after_seconds: int = 2

    # Per-client request rate on the public endpoints; 0 turns the limit off (the default).
    rate_limit_per_second: float = 0.0
    rate_limit_burst: int = 100
    # Origins allowed to call the API from a browser (CORS); empty: no CORS headers.
    cors_allow_origins: tuple[str, ...] = ()
    log_level: str = "INFO"

    # Privacy (docs/privacy.md): the client IP is not stored unless asked for,
    # and then cut to these IPv4 / IPv6 prefix lengths.
    store_client_ip: bool = False
    client_ip_prefixes: tuple[int, int] = (24, 48)
    # Admin dashboard (/admin/): the key that signs its session cookie. None: a
    # random one generated once and kept in data_dir/dashboard_secret, so
    # restarts keep sessions. Set it (same value) when several hosts serve /admin/.
    dashboard_secret: str | None = None
    # A dashboard session lasts this long after sign-in.
    dashboard_session_hours: int = 12
    # Always mark the session cookie Secure (it is anyway when the request came over https).
    dashboard_cookie_secure: bool = False
    # The project write key `eventtrack demo` sends (needed once a write key exists). WRITE_KEY is
    # the name docs/integration_guide.md gives it: `export WRITE_KEY=$(eventtrack create-write-key ...)`.
    write_key: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            data_dir=Path(env.get("EVENTTRACK_DATA_DIR") or ".data").resolve(),
            database_url=env.get("DATABASE_URL") or None,
            api_host=env.get("API_HOST") or "127.0.0.1",
            api_port=_int(env, "API_PORT", 8000),
            api_workers=_int(env, "API_WORKERS", 1),
            dagster_port=_int(env, "DAGSTER_PORT", 3000),
            dagster_host=env.get("DAGSTER_HOST") or "127.0.0.1",
            restart_backoff_seconds=_float(env, "RESTART_BACKOFF_SECONDS", 1.0),
            restart_backoff_max_seconds=_float(env, "RESTART_BACKOFF_MAX_SECONDS", 60.0),
            events_retention_days=_int(env, "EVENTS_RETENTION_DAYS", 90),
            partitions_ahead_days=_int(env, "EVENTS_PARTITIONS_AHEAD_DAYS", 7),
            session_timeout_minutes=_int(env, "SESSION_TIMEOUT_MINUTES", 30),
            aggregates_retention_days=_int(env, "AGGREGATES_RETENTION_DAYS", 730),
            rejected_events_retention_days=_int(env, "REJECTED_EVENTS_RETENTION_DAYS", 30),
            retention_return_event=env.get("RETENTION_RETURN_EVENT") or None,
            partitions_start_date=_date(env, "PARTITIONS_START_DATE"),
            max_capture_body_bytes=_int(env, "MAX_CAPTURE_BODY_BYTES", 1 * MIB),
            max_batch_body_bytes=_int(env, "MAX_BATCH_BODY_BYTES", 20 * MIB),
            max_event_bytes=_int(env, "MAX_EVENT_BYTES", 64 * KIB),
            max_batch_events=_int(env, "MAX_BATCH_EVENTS", 1000),
            max_properties_depth=_int(env, "MAX_PROPERTIES_DEPTH", 32),
            dead_letter_payload_bytes=_int(env, "DEAD_LETTER_PAYLOAD_BYTES", 64 * KIB),
            group_commit_max_rows=_int(env, "GROUP_COMMIT_MAX_ROWS", 20_000),
            max_queued_rows=_int(env, "MAX_QUEUED_ROWS", 200_000),
            commit_timeout_seconds=_float(env, "COMMIT_TIMEOUT_SECONDS", 5.0),
            db_connect_timeout_seconds=_float(env, "DB_CONNECT_TIMEOUT_SECONDS", 2.0),
            log_level=(env.get("LOG_LEVEL") or "INFO").upper(),
            rate_limit_per_second=_float(env, "RATE_LIMIT_PER_SECOND", 0.0),
            rate_limit_burst=_int(env, "RATE_LIMIT_BURST", 100),
            cors_allow_origins=tuple(o.strip() for o in (env.get("CORS_ALLOW_ORIGINS") or "").split(",") if o.strip()),
            store_client_ip=_bool(env, "STORE_CLIENT_IP", False),
            client_ip_prefixes=parse_truncation(env.get("CLIENT_IP_TRUNCATION") or "24,48"),
            dashboard_secret=env.get("DASHBOARD_SECRET") or None,
            dashboard_session_hours=_int(env, "DASHBOARD_SESSION_HOURS", 12),
            dashboard_cookie_secure=(env.get("DASHBOARD_COOKIE_SECURE") or "").lower() in ("1", "true", "yes"),
            write_key=(env.get("WRITE_KEY") or "").strip() or None,
        )

    def with_database_url(self, url: str) -> Settings:
        return replace(self, database_url=url)

    def require_database_url(self) -> str:
        if not self.database_url:
            raise RuntimeError("no database URL: start the embedded Postgres or set DATABASE_URL")
        return self.database_url
