"""How the API process is started: one command line, shared by the CLI and the benchmarks."""

from __future__ import annotations

import sys

from eventtrack.settings import Settings


def api_command(settings: Settings) -> list[str]:
    """The uvicorn command line serving the API with these settings (`eventtrack api`, `up` and the benchmarks)."""
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
