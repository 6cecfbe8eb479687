"""`eventtrack` command line: migrate, api, up, demo, keys, db-url, psql."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date

from eventtrack.database import connectable_url, embedded_pgdata, start_embedded
from eventtrack.migrate import migrate
from eventtrack.settings import Settings
from eventtrack.streaming import deliver_command
from eventtrack_cli.clickhouse_commands import clickhouse_backfill, clickhouse_promote, clickhouse_status
from ingest_api.serve import api_command

log = logging.getLogger("eventtrack")


@contextmanager
def database(settings: Settings) -> Iterator[Settings]:
    """Yields settings with a database URL: DATABASE_URL, or the embedded server under the data dir.

    An embedded server this command started is stopped on exit; one already running
    (e.g. under `make run`) is left alone.
    """
    if settings.database_url:
        yield settings
        return
    embedded = start_embedded(settings)
    log.info("embedded PostgreSQL running (data in %s)", embedded.pgdata)
    try:
        yield settings.with_database_url(embedded.url())
    finally:
        if embedded.started_here:
            embedded.stop()
            log.info("embedded PostgreSQL stopped")


def _migrate(settings: Settings) -> None:
    applied = migrate(settings.require_database_url(), settings.events_retention_days, settings.partitions_ahead_days)
    print(f"migrations applied: {', '.join(applied) if applied else 'none pending'}")


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    with database(settings) as s:
        _migrate(s)
    return 0


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    """Serves the API in the foreground (the database must be up: `eventtrack up` does all)."""
    if settings.database_url:  # nothing to clean up after: become uvicorn, so signals reach it directly
        os.execv(sys.executable, api_command(settings))
    with database(settings) as s:
        env = {**os.environ, "DATABASE_URL": s.require_database_url()}
        child = subprocess.Popen(api_command(s), env=env)
        # Forward Ctrl-C / SIGTERM so uvicorn shuts down gracefully before the database stops.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda n, f: child.send_signal(n))
        return child.wait()


def cmd_deliver(settings: Settings, args: argparse.Namespace) -> int:
    """The webhook delivery worker in the foreground until Ctrl-C / SIGTERM (`eventtrack up` runs one)."""
    import asyncio

    from eventtrack.streaming import deliver

    async def run(s: Settings) -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        await deliver.run(s, stopping)

    with database(settings) as s:
        asyncio.run(run(s))
    return 0


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    """Database (embedded unless DATABASE_URL), migrations, then every service, restarted when it dies, until Ctrl-C."""
    from eventtrack.database import embedded_pgdata
    from eventtrack.embedded_postgres import EmbeddedPostgres
    from eventtrack_cli.supervisor import Backoff, PostgresChild, ProcessChild, Supervisor, answers

    if settings.clickhouse_url and settings.clickhouse_url.startswith("chdb:"):
        # chDB opens its data directory in one process, and `up` runs several (API, Dagster runs).
        print(
            "eventtrack up: CLICKHOUSE_URL=chdb://... is the embedded engine for tests and single-process tools;"
            " `up` needs a ClickHouse server (http(s)://user:password@host:8123/eventtrack, docs/scaling.md).",
            file=sys.stderr,
        )
        return 2
    with database(settings) as s:
        _migrate(s)
        from orchestration.runner import REPO_ROOT, dagster_commands, prepare_dagster

        # The dbt manifest, Dagster's database and DAGSTER_HOME, then the webserver and
        # the daemon (which runs the schedules) next to the API.
        env = {**os.environ, "DATABASE_URL": s.require_database_url(), **prepare_dagster(s)}
        services = {"api": api_command(s), "deliver": deliver_command(), **dagster_commands(s)}
        children = [] if settings.database_url else [PostgresChild(EmbeddedPostgres(embedded_pgdata(s)))]
        children += [ProcessChild(name, command, env, REPO_ROOT) for name, command in services.items()]
        supervisor = Supervisor(children, lambda: Backoff(s.restart_backoff_seconds, s.restart_backoff_max_seconds))
        api, ui = f"http://{s.api_host}:{s.api_port}", f"http://{s.dagster_host}:{s.dagster_port}"
        probes = {
            f"the API ({api})": lambda: answers(f"{api}/readyz"),
            f"the Dagster UI ({ui})": lambda: answers(f"{ui}/server_info"),
        }
        stopping = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda n, f: stopping.set())
        try:
            supervisor.start()
            if supervisor.wait_until_answering(probes, stopping, say=lambda line: print(line, flush=True)):
                print(
                    f"eventtrack is up: API on {api}, dashboard on {api}/admin/, "
                    f"Dagster UI on {ui}  (Ctrl-C stops everything)",
                    flush=True,
                )
                supervisor.run(stopping)
        finally:
            supervisor.stop()
            from orchestration.dbt_server import stop_server

            stop_server()  # the dbt commands' server (orchestration/dbt_server.py): Ctrl-C stops everything
            print("stopped", flush=True)
    return 0


def cmd_catch_up(settings: Settings, args: argparse.Namespace) -> int:
    """Runs now, in this process, what the schedules would have run by this moment."""
    from orchestration.runner import catch_up, prepare_dagster

    with database(settings) as s:
        _migrate(s)
        env = prepare_dagster(s)
        os.environ.update(env)  # dbt and Dagster read their connection and home from the environment
        ok = catch_up(s)
    print("catch-up " + ("done" if ok else "FAILED: see the runs in the Dagster UI or the log above"))
    return 0 if ok else 1


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    """Sends a realistic stream of mobile events over the last days to a running API."""
    import httpx

    from eventtrack_cli.demo import run_demo

    # httpx logs every request at INFO: thousands of lines that would bury the progress line.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    base_url = args.url or f"http://{settings.api_host}:{settings.api_port}"
    write_key = args.write_key or settings.write_key
    try:
        result = run_demo(base_url, users=args.users, days=args.days, write_key=write_key)
    except httpx.TransportError as exc:
        print(
            f"demo: no answer from {base_url} ({exc}): is the API running (`make run`)? Or pass --url.", file=sys.stderr
        )
        return 1
    print(f"demo: {result.events} events in {result.requests} requests to {base_url} ({result.summary()})")
    if any(kind.endswith(" invalid_api_key") for kind in result.failures):
        hint = "the write key sent is unknown or revoked" if write_key else "pass --write-key etw_... or set WRITE_KEY"
        print(
            f"demo: the API requires a project write key: {hint} (`eventtrack list-write-keys` shows the active ones)",
            file=sys.stderr,
        )
    return 0 if result.failed == 0 else 1


def _no_database(settings: Settings) -> int:
    print(
        f"eventtrack: the embedded PostgreSQL (data in {embedded_pgdata(settings)}) is not running: start it with"
        " `make run` (or `.venv/bin/eventtrack up`), or set DATABASE_URL",
        file=sys.stderr,
    )
    return 1


# db-url and psql never start the embedded server: a URI would outlive the server this command
# started and stopped, and a psql session must not own the lifetime of the server `make run` uses.
def cmd_db_url(settings: Settings, args: argparse.Namespace) -> int:
    """Prints the database's libpq URI: DATABASE_URL, or the running embedded server's."""
    url = connectable_url(settings)
    if url is None:
        return _no_database(settings)
    print(url)
    return 0


def cmd_psql(settings: Settings, args: argparse.Namespace) -> int:
    """Becomes the bundled psql, connected to the database; extra arguments go to psql."""
    from eventtrack.embedded_postgres import psql_executable

    url = connectable_url(settings)
    if url is None:
        return _no_database(settings)
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(url)
    env = dict(os.environ)
    password = params.pop("password", None)
    if password:  # in the environment, not on psql's command line where `ps` shows it
        env["PGPASSWORD"] = str(password)
    psql = str(psql_executable())
    extra = args.psql_args[1:] if args.psql_args[:1] == ["--"] else args.psql_args
    os.execve(psql, [psql, "--dbname", make_conninfo(**params), *extra], env)


def cmd_create_admin_key(settings: Settings, args: argparse.Namespace) -> int:
    from ingest_api.admin.key_store import create_admin_key

    with database(settings) as s:
        key_id, key = create_admin_key(s.require_database_url(), args.name)
    print(f"admin key {key_id} ({args.name}) created. It is shown only this once:\n{key}")
    return 0


def cmd_list_admin_keys(settings: Settings, args: argparse.Namespace) -> int:
    from ingest_api.admin.key_store import list_admin_keys

    return _list_keys(settings, list_admin_keys, "...")  # only the key's first characters are kept


def cmd_revoke_admin_key(settings: Settings, args: argparse.Namespace) -> int:
    from ingest_api.admin.key_store import revoke_admin_key

    return _revoke_key(settings, "admin", revoke_admin_key, args.id)


def cmd_create_write_key(settings: Settings, args: argparse.Namespace) -> int:
    from ingest_api.admin.key_store import create_write_key

    with database(settings) as s:
        key_id, key = create_write_key(s.require_database_url(), args.name)
    print(
        f"write key {key_id} ({args.name}) created; from now on capture and flag requests must carry a write key:\n{key}"
    )
    return 0


def cmd_list_write_keys(settings: Settings, args: argparse.Namespace) -> int:
    from ingest_api.admin.key_store import list_write_keys

    return _list_keys(settings, list_write_keys)


def cmd_revoke_write_key(settings: Settings, args: argparse.Namespace) -> int:
    from ingest_api.admin.key_store import revoke_write_key

    return _revoke_key(settings, "write", revoke_write_key, args.id)


def _list_keys(settings: Settings, list_keys: Callable[[str], list[tuple]], shown_suffix: str = "") -> int:
    with database(settings) as s:
        for key_id, name, shown, created_at, revoked_at in list_keys(s.require_database_url()):
            status = f"revoked {revoked_at:%Y-%m-%d %H:%M}" if revoked_at else "active"
            print(f"{key_id}\t{name}\t{shown}{shown_suffix}\tcreated {created_at:%Y-%m-%d %H:%M}\t{status}")
    return 0


def _revoke_key(settings: Settings, kind: str, revoke: Callable[[str, int], bool], key_id: int) -> int:
    with database(settings) as s:
        if revoke(s.require_database_url(), key_id):
            print(f"{kind} key {key_id} revoked")
            return 0
    print(f"no active {kind} key with id {key_id}", file=sys.stderr)
    return 1


def cmd_promote_property(settings: Settings, args: argparse.Namespace) -> int:
    from ingest_api.promote import promote_property

    with database(settings) as s:
        try:
            name, built = promote_property(s.require_database_url(), args.key, args.type)
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        print(f"property {args.key} ({args.type}) promoted: index {name}, built on {built} partition(s) now")
        clickhouse_promote(s)
    return 0


def cmd_list_promoted_properties(settings: Settings, args: argparse.Namespace) -> int:
    from ingest_api.promote import list_promoted

    with database(settings) as s:
        for key, kind, name, valid in list_promoted(s.require_database_url()):
            print(f"{key}\t{kind}\t{name}\t{'valid' if valid else 'INVALID: run promote-property again'}")
    return 0


def cmd_clickhouse_status(settings: Settings, args: argparse.Namespace) -> int:
    with database(settings) as s:
        return clickhouse_status(s)


def cmd_clickhouse_backfill(settings: Settings, args: argparse.Namespace) -> int:
    with database(settings) as s:
        return clickhouse_backfill(s, args.since)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="eventtrack", description="Self-hosted event tracking for mobile apps.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply database migrations and create event partitions")
    sub.add_parser("api", help="serve the ingest API (uvicorn)")
    sub.add_parser("up", help="database + migrations + all services; what `make run` calls")
    sub.add_parser("deliver", help="the webhook delivery worker (destinations); `up` runs one")
    sub.add_parser("catch-up", help="run now what the schedules would have run (aggregates, sessions, maintenance)")
    demo = sub.add_parser("demo", help="send a realistic stream of mobile events to the running API")
    demo.add_argument("--users", type=int, default=200)
    demo.add_argument("--days", type=int, default=7)
    demo.add_argument("--url", help="API base URL (default: http://API_HOST:API_PORT)")
    demo.add_argument(
        "--write-key", help="project write key to send (default: $WRITE_KEY); needed once a write key exists"
    )
    create = sub.add_parser("create-admin-key", help="create an admin API key and print it once")
    create.add_argument("--name", required=True)
    sub.add_parser("list-admin-keys", help="list admin API keys (never the keys themselves)")
    revoke = sub.add_parser("revoke-admin-key", help="revoke an admin API key by id")
    revoke.add_argument("id", type=int)
    create_write = sub.add_parser("create-write-key", help="create a project write key (public: it ships in apps)")
    create_write.add_argument("--name", required=True)
    sub.add_parser("list-write-keys", help="list project write keys")
    revoke_write = sub.add_parser("revoke-write-key", help="revoke a project write key by id")
    revoke_write.add_argument("id", type=int)
    promote = sub.add_parser(
        "promote-property", help="index an event property for filters (expression index on events)"
    )
    promote.add_argument("key", help="the property key, as in properties.<key>")
    promote.add_argument(
        "--type", choices=["text", "numeric"], default="text", help="text: = and != filters; numeric: < <= > >="
    )
    sub.add_parser("list-promoted-properties", help="list promoted properties and whether their index is valid")
    sub.add_parser("db-url", help="print the database's libpq URI (DATABASE_URL, or the running embedded server's)")
    sub.add_parser("psql", help="the bundled psql, connected; arguments after `psql` go to psql (e.g. -c 'select 1')")
    sub.add_parser("clickhouse-status", help="ClickHouse: loaded up to, lag, rows per day against Postgres")
    backfill = sub.add_parser("clickhouse-backfill", help="ClickHouse: reload whole days from Postgres (resumable)")
    backfill.add_argument("--from", dest="since", type=date.fromisoformat, help="first UTC day (YYYY-MM-DD)")
    args, extra = parser.parse_known_args(argv)
    if args.command == "psql":
        args.psql_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    settings = Settings.from_env()
    handlers = {
        "migrate": cmd_migrate,
        "api": cmd_api,
        "up": cmd_up,
        "deliver": cmd_deliver,
        "catch-up": cmd_catch_up,
        "demo": cmd_demo,
        "create-admin-key": cmd_create_admin_key,
        "list-admin-keys": cmd_list_admin_keys,
        "revoke-admin-key": cmd_revoke_admin_key,
        "create-write-key": cmd_create_write_key,
        "list-write-keys": cmd_list_write_keys,
        "revoke-write-key": cmd_revoke_write_key,
        "promote-property": cmd_promote_property,
        "list-promoted-properties": cmd_list_promoted_properties,
        "db-url": cmd_db_url,
        "psql": cmd_psql,
        "clickhouse-status": cmd_clickhouse_status,
        "clickhouse-backfill": cmd_clickhouse_backfill,
    }
    return handlers[args.command](settings, args)


if __name__ == "__main__":
    raise SystemExit(main())
