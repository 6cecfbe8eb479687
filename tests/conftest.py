"""Shared fixtures: a throwaway embedded Postgres per test session, and a real uvicorn server."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import uvicorn

from eventtrack.embedded_postgres import EmbeddedPostgres
from eventtrack.migrate import migrate
from eventtrack.settings import Settings
from ingest_api.app import create_app

RAW_TABLES = (
    "events", "event_uuids", "sessions", "rejected_events", "feature_flags", "admin_api_keys",
    "write_keys", "persons", "person_distinct_ids", "audit_log", "aggregate_rebuilds",
    "clickhouse_erasures", "destinations", "destination_dead_letters",
)  # fmt: skip


@contextmanager
def throwaway_postgres() -> Iterator[EmbeddedPostgres]:
    """A fresh server in a short temp dir (unix socket paths are limited to ~100 chars)."""
    root = Path(tempfile.mkdtemp(prefix="et-", dir="/tmp"))
    pg = EmbeddedPostgres(root / "pg").start()
    try:
        yield pg
    finally:
        # Immediate: its data is deleted next, so the shutdown checkpoint a fast stop writes (up to
        # ~20 s after a test file's writes) would be wasted.
        pg.kill()
        shutil.rmtree(root, ignore_errors=True)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The suite's dbt commands start a server (orchestration/dbt_server.py); it goes with the suite. The
    workers share it, so only the process that ends last (the controller, or a run without workers) stops it."""
    if not hasattr(session.config, "workerinput"):
        from orchestration.dbt_server import stop_server

        stop_server()


@pytest.fixture(scope="session")
def embedded_pg() -> Iterator[EmbeddedPostgres]:
    if os.environ.get("DATABASE_URL"):
        pytest.fail("tests use their own throwaway embedded Postgres; unset DATABASE_URL")
    with throwaway_postgres() as pg:
        yield pg


@pytest.fixture(scope="session")
def database_url(embedded_pg: EmbeddedPostgres) -> str:
    url = embedded_pg.url()
    migrate(url, retention_days=90, ahead_days=7)
    return url


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    """A connection to the test database, with the raw tables emptied first."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE " + ", ".join(RAW_TABLES))
        yield conn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningServer:
    """uvicorn serving the real app on a loopback port, in a thread of the test process."""

    def __init__(self, settings: Settings):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, loop="uvloop", http="httptools", log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> RunningServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


def settings_for(database_url: str, **overrides) -> Settings:
    from dataclasses import replace

    return replace(Settings(database_url=database_url), **overrides)


@pytest.fixture(scope="session")
def chdb_url(tmp_path_factory) -> str:
    """The embedded ClickHouse (chDB) of this test process: chDB opens one data directory per process."""
    return f"chdb://{tmp_path_factory.mktemp('chdb')}"


@pytest.fixture
def clickhouse(chdb_url: str):
    """A client of the embedded ClickHouse with the eventtrack database new and empty."""
    from eventtrack import clickhouse

    target = clickhouse.Target.parse(chdb_url)
    client = clickhouse.connect(target)
    client.command(f"DROP DATABASE IF EXISTS {target.database} SYNC")
    return clickhouse.connect(target), target


@pytest.fixture(scope="session")
def server(database_url: str) -> Iterator[RunningServer]:
    with RunningServer(settings_for(database_url)) as running:
        yield running


@pytest.fixture
def api(server: RunningServer, db):
    import httpx

    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def wait_until(condition, timeout: float = 5.0, interval: float = 0.05):
    """Polls `condition` until it returns a truthy value (for caches that refresh in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@pytest.fixture
def admin_key(api, database_url) -> str:
    """A fresh admin key, already visible to the running server."""
    from ingest_api.admin.key_store import create_admin_key

    _, key = create_admin_key(database_url, "tests")
    headers = {"Authorization": f"Bearer {key}"}
    wait_until(lambda: api.get("/api/v1/analytics/admin/feature-flags/", headers=headers).status_code == 200)
    return key


@pytest.fixture
def admin(api, admin_key):
    """An HTTP client to the running server that sends the admin key."""
    import httpx

    with httpx.Client(
        base_url=str(api.base_url), timeout=30, headers={"Authorization": f"Bearer {admin_key}"}
    ) as client:
        yield client


@pytest.fixture
def write_key(api, database_url) -> Iterator[str]:
    """An active project write key, enforced by the running server; removed (and capture open again) after the test."""
    from ingest_api.admin.key_store import create_write_key

    _, key = create_write_key(database_url, "tests")
    wait_until(lambda: api.get("/api/v1/analytics/public/feature-flags/").status_code == 401)
    yield key
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE write_keys")
    wait_until(lambda: api.get("/api/v1/analytics/public/feature-flags/").status_code == 200)


# The dbt and Dagster fixtures of the pipeline tests (tests/integration) and the dashboard's.
@pytest.fixture(scope="session")
def dbt_env(database_url: str) -> Iterator[dict[str, str]]:
    """The dbt connection in this process's environment (dbt runs as a subprocess and inherits it).

    PGTZ puts the dbt sessions in a half-hour-offset time zone: the models must
    bucket in UTC whatever the server or session time zone.
    """
    from orchestration.resources import dbt_connection_env
    from orchestration.runner import prepare_dbt_manifest

    env = {**dbt_connection_env(database_url), "PGTZ": "America/St_Johns"}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    prepare_dbt_manifest()
    yield env
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def pipeline(dbt_env, database_url, db):
    """Raw tables emptied and the analytics schemas dropped; returns a runner of the dbt assets."""
    from eventtrack.settings import Settings
    from tests.integration.test_pipeline import ANALYTICS_SCHEMAS, Pipeline

    for schema in ANALYTICS_SCHEMAS:
        db.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    return Pipeline(Settings(database_url=database_url))
