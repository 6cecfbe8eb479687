"""The one place that reads the environment.

Every other module receives a `Settings` value; defaults run out of the box.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date
from pathlib import Path
from typing import Any

from eventtrack.client_ip import parse_truncation

KIB = 1024
MIB = 1024 * 1024


def _parser(convert: Callable[[str], Any], what: str) -> Callable[[str, str], Any]:
    """A field's parser from a conversion that raises ValueError; the error names the variable and `what` it takes."""

    def parse(name: str, raw: str) -> Any:
        try:
            return convert(raw)
        except ValueError as exc:
            raise ValueError(f"{name} must be {what}, got {raw!r}") from exc

    return parse


_int = _parser(int, "an integer")
_float = _parser(float, "a number")
_positive_float = _parser(lambda raw: _positive(float(raw)), "a positive number")
_date = _parser(lambda raw: date.fromisoformat(raw.strip()), "a date (YYYY-MM-DD)")


def _positive(value: float) -> float:
    if not value > 0:
        raise ValueError("not positive")
    return value


def _bool(name: str, raw: str) -> bool:
    text = raw.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


def _text(name: str, raw: str) -> str:
    return raw


def _cookie_secure(name: str, raw: str) -> bool:
    # Anything but an explicit yes keeps the default (off): the cookie is Secure over https anyway.
    return raw.lower() in ("1", "true", "yes")


def _origins(name: str, raw: str) -> tuple[str, ...]:
    return tuple(o.strip() for o in raw.split(",") if o.strip())


def env_var(name: str, parse: Callable[[str, str], Any] = _text) -> dict[str, Any]:
    """A field's environment variable and its parser `(name, raw) -> value`; unset or blank keeps the field's default."""
    return {"env": name, "parse": parse}


@dataclass(frozen=True)
class Settings:
    # Where the embedded Postgres (and later Dagster's home) keeps its files.
    data_dir: Path = field(default=Path(".data"), metadata=env_var("EVENTTRACK_DATA_DIR", lambda _, raw: Path(raw)))
    # None means: start the embedded server under data_dir.
    database_url: str | None = field(default=None, metadata=env_var("DATABASE_URL"))

    api_host: str = field(default="127.0.0.1", metadata=env_var("API_HOST"))
    api_port: int = field(default=8000, metadata=env_var("API_PORT", _int))
    api_workers: int = field(default=1, metadata=env_var("API_WORKERS", _int))
    dagster_port: int = field(default=3000, metadata=env_var("DAGSTER_PORT", _int))
    dagster_host: str = field(default="127.0.0.1", metadata=env_var("DAGSTER_HOST"))
    # `eventtrack up` restarts a service that died after this delay, doubled at each
    # quick death in a row up to the maximum (docs/operations.md).
    restart_backoff_seconds: float = field(default=1.0, metadata=env_var("RESTART_BACKOFF_SECONDS", _float))
    restart_backoff_max_seconds: float = field(default=60.0, metadata=env_var("RESTART_BACKOFF_MAX_SECONDS", _float))

    events_retention_days: int = field(default=90, metadata=env_var("EVENTS_RETENTION_DAYS", _int))
    partitions_ahead_days: int = field(default=7, metadata=env_var("EVENTS_PARTITIONS_AHEAD_DAYS", _int))
    # Pipeline: a session with no event for this long is closed ('timeout'),
    # and events without a session_id are split into sessions at such gaps.
    session_timeout_minutes: int = field(default=30, metadata=env_var("SESSION_TIMEOUT_MINUTES", _int))
    aggregates_retention_days: int = field(default=730, metadata=env_var("AGGREGATES_RETENTION_DAYS", _int))
    rejected_events_retention_days: int = field(default=30, metadata=env_var("REJECTED_EVENTS_RETENTION_DAYS", _int))
    # Retention marts: the event that counts as "came back"; None: any event.
    retention_return_event: str | None = field(default=None, metadata=env_var("RETENTION_RETURN_EVENT"))
    # First day of the aggregates' Dagster partitions; None: the day before the installation
    # (orchestration.partitions.partitions_start).
    partitions_start_date: date | None = field(default=None, metadata=env_var("PARTITIONS_START_DATE", _date))

    # Arrivals younger than this are left to the next run (a still-open transaction may hold lower
    # ingest_seq values): the dbt marts and the ClickHouse loader (docs/analytics.md).
    arrival_settle_minutes: int = field(default=5, metadata=env_var("ARRIVAL_SETTLE_MINUTES", _int))
    # Volume anomalies (docs/analytics.md "Volume anomalies"): an hour is flagged when its count is at least
    # this many spreads from the same hour of the week's median over the previous weeks; hours whose
    # expected count is below the minimum are not judged (too few events for a verdict).
    anomaly_threshold: float = field(default=4.0, metadata=env_var("ANOMALY_THRESHOLD", _positive_float))
    anomaly_min_expected_events: float = field(
        default=20.0, metadata=env_var("ANOMALY_MIN_EXPECTED_EVENTS", _positive_float)
    )

    # Churn risk (docs/analytics.md "Churn risk"): a user has churned after a cut-off when they have no event in
    # the CHURN_HORIZON_DAYS days from it; features are taken at weekly cut-offs over the last CHURN_CUTOFF_WEEKS
    # weeks; the asset check fails when the model's validation ROC AUC is below CHURN_AUC_FLOOR.
    churn_horizon_days: int = field(default=14, metadata=env_var("CHURN_HORIZON_DAYS", _int))
    churn_cutoff_weeks: int = field(default=8, metadata=env_var("CHURN_CUTOFF_WEEKS", _int))
    churn_auc_floor: float = field(default=0.7, metadata=env_var("CHURN_AUC_FLOOR", _float))

    # ClickHouse (docs/scaling.md): unset, Postgres answers everything. `http(s)://user:password@host:port/db`
    # for a server; `chdb://<path>` or `chdb://:memory:` for the embedded engine (one process: not `up`).
    clickhouse_url: str | None = field(default=None, metadata=env_var("CLICKHOUSE_URL"))
    # A cluster name from the server's config: replicated, sharded tables (ON CLUSTER DDL).
    clickhouse_cluster: str | None = field(default=None, metadata=env_var("CLICKHOUSE_CLUSTER"))
    # How often the loader copies new arrivals into ClickHouse.
    clickhouse_load_minutes: int = field(default=5, metadata=env_var("CLICKHOUSE_LOAD_MINUTES", _int))

    # Streaming (docs/operations.md "Streaming"): how often the arrival horizon is read (an event reaches the
    # live tail and the destinations this much after its commit, plus a query), the live tail's heartbeat
    # comments (proxies close quiet connections), and how long a live-tail write may wait for a client
    # that does not read before the stream is cut off.
    stream_poll_seconds: float = field(default=0.2, metadata=env_var("STREAM_POLL_SECONDS", _float))
    stream_heartbeat_seconds: float = field(default=15.0, metadata=env_var("STREAM_HEARTBEAT_SECONDS", _float))
    stream_send_timeout_seconds: float = field(default=10.0, metadata=env_var("STREAM_SEND_TIMEOUT_SECONDS", _float))
    # Delivery worker: how often it looks for destinations to take over, and the retry delays of a failing
    # destination (doubling from the first to the maximum, with jitter; a receiver's Retry-After wins, up to
    # its own maximum).
    delivery_scan_seconds: float = field(default=2.0, metadata=env_var("DELIVERY_SCAN_SECONDS", _float))
    delivery_backoff_seconds: float = field(default=1.0, metadata=env_var("DELIVERY_BACKOFF_SECONDS", _float))
    delivery_backoff_max_seconds: float = field(default=300.0, metadata=env_var("DELIVERY_BACKOFF_MAX_SECONDS", _float))
    delivery_retry_after_max_seconds: float = field(
        default=3600.0, metadata=env_var("DELIVERY_RETRY_AFTER_MAX_SECONDS", _float)
    )

    max_capture_body_bytes: int = field(default=1 * MIB, metadata=env_var("MAX_CAPTURE_BODY_BYTES", _int))
    max_batch_body_bytes: int = field(default=20 * MIB, metadata=env_var("MAX_BATCH_BODY_BYTES", _int))
    max_event_bytes: int = field(default=64 * KIB, metadata=env_var("MAX_EVENT_BYTES", _int))
    max_batch_events: int = field(default=1000, metadata=env_var("MAX_BATCH_EVENTS", _int))
    max_properties_depth: int = field(default=32, metadata=env_var("MAX_PROPERTIES_DEPTH", _int))
    # Raw payloads kept in the dead-letter table are cut to this size.
    dead_letter_payload_bytes: int = field(default=64 * KIB, metadata=env_var("DEAD_LETTER_PAYLOAD_BYTES", _int))
    # A corrected timestamp further than this in the future is clamped.
    max_future_skew_hours: int = 23

    # Group commit: how many rows one transaction takes at most.
    group_commit_max_rows: int = field(default=20_000, metadata=env_var("GROUP_COMMIT_MAX_ROWS", _int))
    # Group commit: transactions in flight at once per API worker, each on its own connection.
    sink_writers: int = field(default=2, metadata=env_var("SINK_WRITERS", _int))
    # Backpressure: rows waiting for the writer before new writes get 503.
    max_queued_rows: int = field(default=200_000, metadata=env_var("MAX_QUEUED_ROWS", _int))
    # A request never waits longer than this for its commit before 503.
    commit_timeout_seconds: float = field(default=5.0, metadata=env_var("COMMIT_TIMEOUT_SECONDS", _float))
    db_connect_timeout_seconds: float = field(default=2.0, metadata=env_var("DB_CONNECT_TIMEOUT_SECONDS", _float))
    retry_after_seconds: int = 2

    # Per-client request rate on the public endpoints; 0 turns the limit off (the default).
    rate_limit_per_second: float = field(default=0.0, metadata=env_var("RATE_LIMIT_PER_SECOND", _float))
    rate_limit_burst: int = field(default=100, metadata=env_var("RATE_LIMIT_BURST", _int))
    # Origins allowed to call the API from a browser (CORS); empty: no CORS headers.
    cors_allow_origins: tuple[str, ...] = field(default=(), metadata=env_var("CORS_ALLOW_ORIGINS", _origins))
    log_level: str = field(default="INFO", metadata=env_var("LOG_LEVEL", lambda _, raw: raw.upper()))

    # Privacy (docs/privacy.md): the client IP is not stored unless asked for,
    # and then cut to these IPv4 / IPv6 prefix lengths.
    store_client_ip: bool = field(default=False, metadata=env_var("STORE_CLIENT_IP", _bool))
    client_ip_prefixes: tuple[int, int] = field(
        default=(24, 48), metadata=env_var("CLIENT_IP_TRUNCATION", lambda _, raw: parse_truncation(raw))
    )
    # Admin dashboard (/admin/): the key that signs its session cookie. None: a
    # random one generated once and kept in data_dir/dashboard_secret, so
    # restarts keep sessions. Set it (same value) when several hosts serve /admin/.
    dashboard_secret: str | None = field(default=None, metadata=env_var("DASHBOARD_SECRET"))
    # A dashboard session lasts this long after sign-in.
    dashboard_session_hours: int = field(default=12, metadata=env_var("DASHBOARD_SESSION_HOURS", _int))
    # Always mark the session cookie Secure (it is anyway when the request came over https).
    dashboard_cookie_secure: bool = field(default=False, metadata=env_var("DASHBOARD_COOKIE_SECURE", _cookie_secure))
    # The project write key `eventtrack demo` sends (needed once a write key exists). WRITE_KEY is
    # the name docs/integration_guide.md gives it: `export WRITE_KEY=$(eventtrack create-write-key ...)`.
    write_key: str | None = field(default=None, metadata=env_var("WRITE_KEY", lambda _, raw: raw.strip() or None))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Each field with an `env_var(...)` metadata from its variable; the others keep their defaults."""
        env = os.environ if env is None else env
        values = {}
        for f in fields(cls):
            raw = env.get(f.metadata["env"]) if "env" in f.metadata else None
            if raw is not None and raw.strip() != "":
                values[f.name] = f.metadata["parse"](f.metadata["env"], raw)
        settings = cls(**values)
        # A relative data dir means relative to where the process started.
        return replace(settings, data_dir=settings.data_dir.resolve())

    def with_database_url(self, url: str) -> Settings:
        return replace(self, database_url=url)

    def require_database_url(self) -> str:
        if not self.database_url:
            raise RuntimeError("no database URL: start the embedded Postgres or set DATABASE_URL")
        return self.database_url
