"""`eventtrack-dbt`: the dbt command, answered by forking a process that has dbt imported already.

A `dbt` subprocess spends ~3 s on this machine before its first model runs (imports, the adapter,
Jinja's macro set-up); the models of a run here take a fraction of that. Dagster starts one dbt
subprocess per dbt op (dagster-dbt's DbtCliResource), so that fixed cost was most of a pipeline run.

This executable is what Dagster and the runner invoke instead of `dbt` (orchestration.resources.DBT_COMMAND),
with the same arguments, exit codes and output. It connects to a small server over a unix socket and passes
its stdin/stdout/stderr, arguments, environment and working directory; the server forks a child that runs
`dbt.cli.main.cli` exactly as the `dbt` script does, writing straight to the caller's stdout, and reports
the exit code. A forked child starts with dbt already imported and warmed up, so dbt's own work is all that
is left. The caller stays a real process (dagster-dbt reads its stdout and signals it as before); SIGINT and
SIGTERM are passed on to the child.

The server is started on first use (detached, one per virtualenv and dbt version: the socket's name says
which), exits after IDLE_SECONDS without a request, and never blocks a caller: when it cannot be reached
the caller runs the real `dbt` itself. This module imports only the standard library at the top, so the
caller starts in milliseconds; dbt is imported by the server alone.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# A server started on demand exits after this long without a request; `eventtrack up` keeps its own for good.
IDLE_SECONDS = 300
# How long a caller waits for a server it started to listen before running dbt itself.
START_TIMEOUT_SECONDS = 30
_HEADER = struct.Struct("!I")


def socket_path() -> Path:
    """One server per interpreter (virtualenv) and version of this file and of dbt: a changed install gets a new one."""
    from importlib.metadata import version

    stamp = f"{sys.executable}|{Path(__file__).stat().st_mtime_ns}|{version('dbt-core')}|{version('dbt-postgres')}"
    digest = hashlib.sha256(stamp.encode()).hexdigest()[:16]
    # A unix socket's path is limited to ~100 bytes: the temp dir, not the project's.
    return Path(tempfile.gettempdir()) / f"eventtrack-dbt-{os.getuid()}-{digest}.sock"


def real_dbt() -> str:
    return str(Path(sys.executable).with_name("dbt"))


# --- the caller ------------------------------------------------------------------------------------


def main() -> int:
    path = socket_path()
    conn = _connect(path) or _start_and_connect(path)
    if conn is None:  # no server: dbt in this process's place, as if this were the dbt script
        os.execv(real_dbt(), [real_dbt(), *sys.argv[1:]])
    request = json.dumps({"argv": ["dbt", *sys.argv[1:]], "env": dict(os.environ), "cwd": os.getcwd()}).encode()
    fds = array.array("i", [0, 1, 2])
    conn.sendmsg([_HEADER.pack(len(request))], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
    conn.sendall(request)
    reader = conn.makefile("rb")
    child = int(reader.readline() or 0)
    if child:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda s, _f, pid=child: _forward(pid, s))
    line = reader.readline()
    # No exit code: the child died without reporting one (killed): fail as dbt would.
    return int(line) if line.strip() else 1


def _forward(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _connect(path: Path) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        return None
    return conn


def _start_and_connect(path: Path) -> socket.socket | None:
    log = open(str(path) + ".log", "ab")  # noqa: SIM115 - handed to the server process
    server = subprocess.Popen(
        [sys.executable, "-m", "orchestration.dbt_server", "--serve", str(path)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,  # not in the caller's process group: Ctrl-C there does not stop it
        close_fds=True,
        cwd="/",
    )
    log.close()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        conn = _connect(path)
        if conn is not None:
            return conn
        # It exited: it failed (its log says why), or another server had the lock. Wait for that one only while
        # it lives (it may be warming up); a server stopped before it listened would leave us waiting for nothing.
        if server.poll() is not None and not _lock_held(path):
            return None
        time.sleep(0.05)
    return None


# --- the server ------------------------------------------------------------------------------------


def serve(path: Path, idle_seconds: float | None = IDLE_SECONDS) -> None:
    """Serves until idle for `idle_seconds` (None: until stopped). Returns at once when another server has the socket."""
    lock = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)  # held for the server's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another caller started one at the same moment: it serves
    os.ftruncate(lock, 0)
    os.write(lock, f"{os.getpid()}\n".encode())
    _warm_up()
    path.unlink(missing_ok=True)  # a dead server's socket
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(64)
    listener.settimeout(idle_seconds)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # through `finally`: the socket goes with the server
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    try:
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                return
            if os.fork() == 0:
                listener.close()
                os.close(lock)  # the lock is the server's alone: a child running on must not keep it
                _child(conn)  # never returns
            conn.close()
    finally:
        path.unlink(missing_ok=True)


def stop_server(path: Path | None = None) -> bool:
    """Stops the server of this install if one runs (its children finish their commands). True if one did."""
    path = path or socket_path()
    try:
        pid = int(Path(str(path) + ".lock").read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return False
    if not _lock_held(path):
        return False  # the pid is a dead server's
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    return True


def _lock_held(path: Path) -> bool:
    """Whether a server (warming up or serving) holds the lock of `path`."""
    try:
        lock = open(str(path) + ".lock")  # noqa: SIM115
    except FileNotFoundError:
        return False
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False


def _warm_up() -> None:
    """Imports what every dbt command imports and parses the project once, so a forked child starts past it.

    The parse writes to a scratch dir and connects to nothing. multiprocessing's resource tracker (dbt makes
    semaphores) is started here, so the children share this process's instead of each starting one.
    Nothing here may start a thread: a forked child has none of its parent's threads, so a pool made here
    would wait forever in the child. dbt's static parser (dbt_extractor) runs on a Rust thread pool made on
    first use, hence --no-static-parser: each child makes its own pool (seen hanging without it).
    """
    import shutil
    from multiprocessing import resource_tracker

    from dbt.cli.main import dbtRunner

    from orchestration.resources import DBT_PROJECT_DIR

    resource_tracker.ensure_running()
    scratch = tempfile.mkdtemp(prefix="eventtrack-dbt-warm-")
    try:
        project = ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
        warm = ["--quiet", "--no-static-parser", "parse", *project, "--target-path", scratch, "--log-path", scratch]
        dbtRunner().invoke(warm)
        if threading.active_count() > 1 or len(os.listdir("/proc/self/task")) > 1:
            raise RuntimeError("dbt's warm-up started a thread: forking this process would hang its children")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _child(conn: socket.socket) -> None:
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        conn.settimeout(None)
        request = _receive(conn)
        conn.sendall(f"{os.getpid()}\n".encode())
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = request["argv"]
        code = _run_dbt()
    finally:
        with contextlib.suppress(OSError):
            sys.stdout.flush()
            sys.stderr.flush()
            conn.sendall(f"{code}\n".encode())
        os._exit(code)


def _receive(conn: socket.socket) -> dict:
    fds = array.array("i")
    data, ancillary, _, _ = conn.recvmsg(_HEADER.size, socket.CMSG_SPACE(3 * fds.itemsize))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    (size,) = _HEADER.unpack(data)
    body = bytearray()
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ConnectionError("request cut short")
        body += chunk
    return json.loads(body)


def _run_dbt() -> int:
    from dbt.cli.main import cli

    try:
        cli(prog_name="dbt")  # click would name it after this module (the server runs as `python -m`)
    except SystemExit as done:
        code = done.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:  # --serve PATH [--forever]
        serve(Path(sys.argv[2]), None if sys.argv[3:4] == ["--forever"] else IDLE_SECONDS)
    else:
        sys.exit(main())
