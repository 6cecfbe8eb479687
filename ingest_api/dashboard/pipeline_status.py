"""The last pipeline run, asked of the Dagster webserver's GraphQL API (short timeout, never fails the page)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

QUERY = """
query LastRun {
  runsOrError(limit: 1) {
    __typename
    ... on Runs { results { runId status jobName startTime endTime } }
    ... on PythonError { message }
  }
}
"""


@dataclass(frozen=True)
class PipelineStatus:
    ui_url: str
    reachable: bool
    run_id: str | None = None
    status: str | None = None  # Dagster's RunStatus: SUCCESS, FAILURE, STARTED, QUEUED, CANCELED, ...
    job: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    problem: str | None = None

    @property
    def run_url(self) -> str | None:
        return f"{self.ui_url}/runs/{self.run_id}" if self.run_id else None


def dagster_ui_url(host: str, port: int) -> str:
    # A webserver bound to every interface is reached on the loopback from here.
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{shown}:{port}"


def parse_last_run(ui_url: str, body: Any) -> PipelineStatus:
    """The GraphQL answer -> status (pure)."""
    try:
        result = body["data"]["runsOrError"]
        if result.get("__typename") != "Runs":
            return PipelineStatus(ui_url, True, problem=str(result.get("message") or result.get("__typename")))
        runs = result["results"]
    except (KeyError, TypeError, AttributeError):
        return PipelineStatus(ui_url, True, problem="unexpected answer from Dagster")
    if not runs:
        return PipelineStatus(ui_url, True, problem="no run yet")
    run = runs[0]

    def when(value: Any) -> datetime | None:
        return datetime.fromtimestamp(value, UTC) if isinstance(value, (int, float)) else None

    return PipelineStatus(
        ui_url,
        True,
        run_id=run.get("runId"),
        status=run.get("status"),
        job=run.get("jobName"),
        started_at=when(run.get("startTime")),
        ended_at=when(run.get("endTime")),
    )


async def last_run(host: str, port: int, timeout: float = 1.0) -> PipelineStatus:
    ui_url = dagster_ui_url(host, port)
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.post(f"{ui_url}/graphql", json={"query": QUERY})
            response.raise_for_status()
            body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return PipelineStatus(ui_url, False, problem=f"Dagster is not reachable ({type(exc).__name__})")
    return parse_last_run(ui_url, body)
