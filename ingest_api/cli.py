"""`eventtrack` command line: migrate, api, up."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Iterator

from ingest_api.database import start_embedded
from ingest_api.migrate import migrate
from ingest_api.settings import Settings

log = logging.getLogger("eventtrack")


@contextmanager
def database(settings: Settings, *, stop_on_exit: bool) -> Iterator[Settings]:
    """Yields settings with a database URL: DATABASE_URL, or the embedded server under the data dir."""
    if settings.database_url:
        yield settings
        return
    embedded = start_embedded(settings)
    log.info("embedded PostgreSQL running (data in %s)", embedded.pgdata)
    try:
        yield settings.with_database_url(embedded.url())
    finally:
        if stop_on_exit:
            embedded.stop()
            log.info("embedded PostgreSQL stopped")


def _migrate(settings: Settings) -> None:
    applied = migrate(settings.require_database_url(), settings.events_retention_days, settings.partitions_ahead_days)
    print(f"migrations applied: {', '.join(applied) if applied else 'none pending'}")


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    with database(settings, stop_on_exit=not settings.database_url) as s:
        _migrate(s)
    return 0


def _api_command(settings: Settings) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "ingest_api.asgi:app",
        "--host",
        settings.api_host,
        "--port",
        str(settings.api_port),
        "--workers",
        str(settings.api_workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--timeout-graceful-shutdown",
        "10",
    ]


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    """Serves the API in the foreground (the database must be up: `eventtrack up` does all)."""
    with database(settings, stop_on_exit=True) as s:
        env = {**os.environ, "DATABASE_URL": s.require_database_url()}
        return subprocess.call(_api_command(s), env=env)


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    """Database (embedded unless DATABASE_URL), migrations, then every service until Ctrl-C."""
    with database(settings, stop_on_exit=True) as s:
        _migrate(s)
        env = {**os.environ, "DATABASE_URL": s.require_database_url()}
        services = {"api": _api_command(s)}
        children: dict[str, subprocess.Popen] = {}
        stopping = False

        def stop(signum, frame):  # noqa: ARG001
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            for name, command in services.items():
                # Own process group: Ctrl-C reaches us once; we stop the children in order.
                children[name] = subprocess.Popen(command, env=env, start_new_session=True)
            print(f"eventtrack is up: API on http://{s.api_host}:{s.api_port}  (Ctrl-C stops everything)", flush=True)
            while not stopping:
                for name, child in children.items():
                    if child.poll() is not None:
                        log.error("%s exited with %s; stopping", name, child.returncode)
                        stopping = True
                time.sleep(0.2)
        finally:
            for child in children.values():
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in children.values():
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.kill()
            print("stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="eventtrack", description="Self-hosted event tracking for mobile apps.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply database migrations and create event partitions")
    sub.add_parser("api", help="serve the ingest API (uvicorn)")
    sub.add_parser("up", help="database + migrations + all services; what `make run` calls")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    handlers = {"migrate": cmd_migrate, "api": cmd_api, "up": cmd_up}
    return handlers[args.command](settings, args)


if __name__ == "__main__":
    raise SystemExit(main())
