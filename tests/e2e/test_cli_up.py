"""`eventtrack up` (what `make run` calls): embedded Postgres, migrations, API and Dagster, kept
running (a process that dies is restarted, with no acknowledged event lost); Ctrl-C stops all of it.

`eventtrack up` starts once (Dagster is slow to start): every check on it is in the one test.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import suppress
from functools import partial
from pathlib import Path

import httpx
import psutil
import psycopg

from eventtrack_cli.supervisor import answers
from tests.conftest import free_port, wait_until
from tests.e2e.test_crash_safety import Load, assert_acked_stored_exactly_once

UP_LINE = "eventtrack is up"
# What tells each child of `eventtrack up` apart in its command line.
COMMANDS = {
    "api": "uvicorn",
    "deliver": "eventtrack_cli.main deliver",
    "dagster-webserver": "dagster-webserver",
    "dagster-daemon": "dagster-daemon",
}


class Up:
    """A running `eventtrack up`, its output in a file, every process it started remembered."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.api = f"http://127.0.0.1:{free_port()}"
        self.ui = f"http://127.0.0.1:{free_port()}"
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env.update(
            EVENTTRACK_DATA_DIR=str(data_dir),
            API_PORT=self.api.rsplit(":", 1)[1],
            DAGSTER_PORT=self.ui.rsplit(":", 1)[1],
            RESTART_BACKOFF_SECONDS="0.1",
        )
        self.output = data_dir / "up.log"
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "eventtrack"), "up"], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.seen: dict[int, psutil.Process] = {}

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "pg" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def pid_of(self, service: str) -> int | None:
        """The pid of a service (as `eventtrack up` names it) now; remembers every process seen on the way."""
        assert self.proc.poll() is None, self.log()[-5000:]
        processes = psutil.Process(self.proc.pid).children(recursive=True)
        postmaster = self.postmaster_pid()
        if postmaster is not None and psutil.pid_exists(postmaster):
            processes += [psutil.Process(postmaster), *psutil.Process(postmaster).children()]
        found = None
        for process in processes:
            try:
                self.seen.setdefault(process.pid, process)
                command = " ".join(process.cmdline())
            except psutil.NoSuchProcess:
                continue
            if service in COMMANDS and process.ppid() == self.proc.pid and COMMANDS[service] in command:
                found = process.pid
        return postmaster if service == "postgres" else found

    def replaced(self, service: str, killed: int) -> bool:
        """Another process runs `service`, `eventtrack up` said so, and the platform answers again."""
        restarted = f"{service} restarted" in self.log()
        return restarted and self.pid_of(service) not in (None, killed) and self.answering()

    def kill_everything(self) -> None:
        """After a failure: nothing this run started may outlive the test."""
        if self.proc.poll() is None:
            self.pid_of("postgres")  # remembers what runs now
            self.proc.kill()
        for process in self.seen.values():
            with suppress(psutil.NoSuchProcess):
                process.kill()
        self.proc.wait()

    def answering(self) -> bool:
        """The API (with its database) and the Dagster UI both answer."""
        return answers(f"{self.api}/readyz") and answers(f"{self.ui}/server_info")


def test_up_serves_everything_restarts_what_dies_and_ctrl_c_stops_everything():
    data_dir = Path(tempfile.mkdtemp(prefix="et-up-", dir="/tmp"))
    up = Up(data_dir)
    try:
        # "eventtrack is up" only once both answer; what it waits for is said before.
        wait_until(lambda: UP_LINE in up.log() or up.proc.poll() is not None, timeout=240, interval=0.05)
        assert up.proc.poll() is None, up.log()[-5000:]
        assert answers(f"{up.api}/readyz"), "announced up before the API answered"
        assert answers(f"{up.ui}/server_info"), "announced up before the Dagster UI answered"
        log = up.log()
        assert log.index(f"waiting for the API ({up.api}) and the Dagster UI ({up.ui}) to answer") < log.index(UP_LINE)

        response = httpx.post(f"{up.api}/api/v1/analytics/capture/", json={"distinct_id": "u", "event": "app_open"})
        assert response.status_code == 200
        database_url = f"postgresql://postgres:@/eventtrack?host={data_dir / 'pg'}"
        # The dbt views exist before any job runs: the first hourly run reads them.
        with psycopg.connect(database_url) as conn:
            views = {
                r[0]
                for r in conn.execute(
                    "SELECT schemaname || '.' || viewname FROM pg_views WHERE schemaname LIKE 'analytics%'"
                )
            }
        assert {
            "analytics_staging.stg_eventtrack__events",
            "analytics_staging.stg_eventtrack__experiments",
            "analytics_intermediate.int_events_sessionized",
        } <= views

        # The Dagster UI with the whole asset graph and the schedules running.
        assets = graphql(up.ui, "{ assetNodes { assetKey { path } } }")["assetNodes"]
        names = {"/".join(a["assetKey"]["path"]) for a in assets}
        assert {
            "eventtrack/events",
            "analytics/agg_events_hourly",
            "analytics/agg_events_daily",
            "analytics/fct_sessions",
            "analytics/agg_active_users_daily",
            "maintenance/retention",
            "maintenance/session_closure",
            "analytics/agg_event_volume_anomalies",
            "analytics/agg_event_volume_anomalies_table",
            # Churn risk (docs/analytics.md): the features, the model's scores, the tables it fills.
            "analytics_intermediate/int_user_activity_daily",
            "analytics/fct_user_churn_features",
            "analytics/user_churn_scores",
            "analytics/user_churn_scores_table",
            "analytics/churn_models_table",
        } <= names
        repos = graphql(
            up.ui,
            "{ repositoriesOrError { ... on RepositoryConnection { nodes { schedules {"
            " name cronSchedule executionTimezone scheduleState { status } } } } } }",
        )
        schedules = repos["repositoriesOrError"]["nodes"][0]["schedules"]
        assert {"name": "churn_scores_schedule", "cronSchedule": "0 2 * * 1"} in [
            {"name": s["name"], "cronSchedule": s["cronSchedule"]} for s in schedules
        ]
        checks = graphql(
            up.ui,
            '{ assetNodeOrError(assetKey: {path: ["analytics", "user_churn_scores"]}) { ... on AssetNode {'
            " assetChecksOrError { ... on AssetChecks { checks { name } } } } } }",
        )
        assert checks["assetNodeOrError"]["assetChecksOrError"]["checks"] == [{"name": "churn_validation_auc"}]
        assert schedules and all(
            s["scheduleState"]["status"] == "RUNNING" and s["executionTimezone"] == "UTC" for s in schedules
        )

        # Each service killed in turn comes back by itself, under a steady stream of events.
        with Load(up.api, threads=2, batch_size=10, pause=0.02) as load:
            load.wait_for_acks(100)
            for service, exit_line in [
                ("api", "api was killed by SIGKILL"),
                ("deliver", "deliver was killed by SIGKILL"),
                ("dagster-webserver", "dagster-webserver was killed by SIGKILL"),
                ("dagster-daemon", "dagster-daemon was killed by SIGKILL"),
                ("postgres", "postgres stopped"),
            ]:
                killed = up.pid_of(service)
                assert killed is not None, f"no {service} process"
                os.kill(killed, signal.SIGKILL)
                wait_until(partial(up.replaced, service, killed), timeout=180, interval=0.1)
                assert exit_line in up.log()
                load.wait_for_acks(len(load.acked) + 100, timeout=60)
        assert set(load.statuses) <= {200, 503, "connection_error"}, load.statuses
        assert_acked_stored_exactly_once(database_url, load.acked)
        up.pid_of("api")  # remembers the processes running now

        up.proc.send_signal(signal.SIGINT)
        assert up.proc.wait(timeout=60) == 0
        assert not (data_dir / "pg" / "postmaster.pid").exists(), "embedded Postgres still running"
        left = [p for p in up.seen.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not left, f"processes survived Ctrl-C: {left}"
        try:
            httpx.get(f"{up.api}/healthz", timeout=2)
            raise AssertionError("API still answering after Ctrl-C")
        except httpx.ConnectError:
            pass
    finally:
        up.kill_everything()
        shutil.rmtree(data_dir, ignore_errors=True)


def graphql(ui: str, query: str) -> dict:
    response = httpx.post(f"{ui}/graphql", json={"query": query}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def test_migrate_honours_database_url_with_a_unix_socket_host(embedded_pg, tmp_path):
    from eventtrack.embedded_postgres import ensure_database

    ensure_database(embedded_pg.admin_url(), "other_instance")
    url = embedded_pg.url("other_instance")
    assert "host=/" in url  # a libpq URI with a unix-socket directory
    env = {**os.environ, "DATABASE_URL": url, "EVENTTRACK_DATA_DIR": str(tmp_path / "unused")}
    eventtrack = Path(sys.executable).parent / "eventtrack"
    for _ in range(2):  # idempotent
        result = subprocess.run(
            [str(eventtrack), "migrate"], check=False, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
    assert "none pending" in result.stdout
    assert not (tmp_path / "unused" / "pg").exists(), "started an embedded server although DATABASE_URL was set"

    import psycopg

    with psycopg.connect(url) as conn:
        partitions = conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass").fetchone()[0]
    assert partitions == 98  # today - 90 days .. today + 7 days
