"""`eventtrack up` (what `make run` calls): embedded Postgres, migrations, API; Ctrl-C stops all of it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

from tests.conftest import free_port


def test_up_serves_the_api_on_embedded_postgres_and_ctrl_c_stops_everything():
    data_dir = Path(tempfile.mkdtemp(prefix="et-up-", dir="/tmp"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(EVENTTRACK_DATA_DIR=str(data_dir), API_PORT=str(port), DAGSTER_PORT=str(free_port()))
    eventtrack = Path(sys.executable).parent / "eventtrack"
    proc = subprocess.Popen([str(eventtrack), "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "eventtrack up did not become ready"
            time.sleep(0.5)
        response = httpx.post(f"{base}/api/v1/analytics/capture/", json={"distinct_id": "u", "event": "app_open"})
        assert response.status_code == 200
        # The dbt views exist before any job runs: the first hourly run reads them.
        with psycopg.connect(f"postgresql://postgres:@/eventtrack?host={data_dir / 'pg'}") as conn:
            views = {r[0] for r in conn.execute("SELECT schemaname || '.' || viewname FROM pg_views WHERE schemaname LIKE 'analytics%'")}
        assert {"analytics_staging.stg_eventtrack__events", "analytics_staging.stg_eventtrack__experiments",
                "analytics_intermediate.int_events_sessionized"} <= views

        # The Dagster UI with the whole asset graph and the schedules running.
        ui = f"http://127.0.0.1:{env['DAGSTER_PORT']}"
        while True:
            try:
                if httpx.get(f"{ui}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "Dagster UI did not come up"
            time.sleep(0.5)
        assets = graphql(ui, "{ assetNodes { assetKey { path } } }")["assetNodes"]
        names = {"/".join(a["assetKey"]["path"]) for a in assets}
        assert {"eventtrack/events", "analytics/agg_events_hourly", "analytics/agg_events_daily", "analytics/fct_sessions",
                "analytics/active_users_daily", "maintenance/retention", "maintenance/session_closure"} <= names
        repos = graphql(ui, "{ repositoriesOrError { ... on RepositoryConnection { nodes { schedules {"
                            " name cronSchedule executionTimezone scheduleState { status } } } } } }")
        schedules = repos["repositoriesOrError"]["nodes"][0]["schedules"]
        assert schedules and all(s["scheduleState"]["status"] == "RUNNING" and s["executionTimezone"] == "UTC" for s in schedules)
        assert (data_dir / "pg" / "postmaster.pid").exists()

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert not (data_dir / "pg" / "postmaster.pid").exists(), "embedded Postgres still running"
        for pattern in (str(data_dir), f"dagster-webserver.*{env['DAGSTER_PORT']}"):
            leftovers = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
            assert not leftovers, f"processes matching {pattern} survived Ctrl-C"
        try:
            httpx.get(f"{base}/healthz", timeout=2)
            raise AssertionError("API still answering after Ctrl-C")
        except httpx.ConnectError:
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


def graphql(ui: str, query: str) -> dict:
    response = httpx.post(f"{ui}/graphql", json={"query": query}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def test_migrate_honours_database_url_with_a_unix_socket_host(embedded_pg, tmp_path):
    from ingest_api.embedded_postgres import ensure_database

    ensure_database(embedded_pg.admin_url(), "other_instance")
    url = embedded_pg.url("other_instance")
    assert "host=/" in url  # a libpq URI with a unix-socket directory
    env = {**os.environ, "DATABASE_URL": url, "EVENTTRACK_DATA_DIR": str(tmp_path / "unused")}
    eventtrack = Path(sys.executable).parent / "eventtrack"
    for _ in range(2):  # idempotent
        result = subprocess.run([str(eventtrack), "migrate"], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    assert "none pending" in result.stdout
    assert not (tmp_path / "unused" / "pg").exists(), "started an embedded server although DATABASE_URL was set"

    import psycopg

    with psycopg.connect(url) as conn:
        partitions = conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass").fetchone()[0]
    assert partitions == 98  # today - 90 days .. today + 7 days
