"""`eventtrack clickhouse-status` and `eventtrack clickhouse-backfill` (docs/operations.md)."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta

import psycopg

from eventtrack import clickhouse
from eventtrack.settings import Settings


def _target(settings: Settings) -> clickhouse.Target | None:
    if not settings.clickhouse_url:
        print("CLICKHOUSE_URL is not set: Postgres answers every query (docs/scaling.md).", file=sys.stderr)
        return None
    return clickhouse.Target.parse(settings.clickhouse_url, settings.clickhouse_cluster)


def clickhouse_promote(settings: Settings, out=sys.stdout) -> None:
    """After `promote-property`: with ClickHouse configured, its column for each promoted property, computed
    for the rows already loaded before this returns (the loader would add it too, without waiting)."""
    if not settings.clickhouse_url:
        return
    target = clickhouse.Target.parse(settings.clickhouse_url, settings.clickhouse_cluster)
    client = clickhouse.connect(target)
    with psycopg.connect(settings.require_database_url(), autocommit=True) as pg:
        added = clickhouse.ensure_promoted_columns(pg, client, target, wait=True)
    for column in added:
        print(f"ClickHouse: column {column} added to {target.database}.events and materialized", file=out)


def clickhouse_status(settings: Settings, out=sys.stdout) -> int:
    """Prints the load watermark, the lag and rows per UTC day on both sides; 1 when a day differs."""
    target = _target(settings)
    if target is None:
        return 2
    client = clickhouse.connect(target)
    with psycopg.connect(settings.require_database_url(), autocommit=True) as pg:
        state = clickhouse.status(pg, client, target)
    print(f"loaded up to ingest_seq {state['loaded_up_to_ingest_seq']} of {state['newest_ingest_seq']}", file=out)
    print(f"behind the newest arrival by {state['seconds_behind']:.0f} s", file=out)
    if state["unfinished_load"]:
        lo, hi = state["unfinished_load"]
        print(f"a load of ({lo}, {hi}] did not finish: the next load redoes it", file=out)
    print(f"erasures waiting for the next load: {state['pending_erasures']}", file=out)
    print("day         postgres  clickhouse", file=out)
    differ = 0
    for row in state["days"]:
        mark = (
            "" if row.postgres == row.clickhouse else "  DIFFERS: eventtrack clickhouse-backfill --from " + str(row.day)
        )
        differ += bool(mark)
        print(f"{row.day}  {row.postgres:>9}  {row.clickhouse:>10}{mark}", file=out)
    return 1 if differ else 0


def clickhouse_backfill(settings: Settings, since: date | None, out=sys.stderr) -> int:
    """Reloads each UTC day from `since` (default: where an unfinished backfill stopped, else the first day
    Postgres holds) into ClickHouse, a day at a time, with a progress bar. Ctrl-C or a crash loses at most
    the day in progress: run it again (without --from) to resume. On an install that never loaded, this
    is the first load of its history (the scheduled loader then only adds what arrives after)."""
    target = _target(settings)
    if target is None:
        return 2
    client = clickhouse.connect(target)
    resume = clickhouse.backfill_resume_point(client, target) if since is None else None
    run = resume[0] if resume else datetime.now(UTC).isoformat()
    with psycopg.connect(settings.require_database_url(), autocommit=True) as pg:
        # An install loading its history for the first time: the backfill takes it, the loader what follows.
        clickhouse.claim_history(pg, client, target, timedelta(minutes=settings.arrival_settle_minutes))
        days = clickhouse.days_in_postgres(pg, since)
        if resume:
            days = [day for day in days if day > resume[1]]
            print(f"resuming the backfill started {run}, after {resume[1]}", file=out)
        total = 0
        for i, day in enumerate(days, 1):
            rows = clickhouse.backfill_day(pg, client, target, day)
            clickhouse.log_backfill(client, target, run, day, rows, finished=False)
            total += rows
            done = int(30 * i / len(days))
            print(f"\r[{'#' * done}{'.' * (30 - done)}] {i}/{len(days)} days, {day}, {total:,} rows", end="", file=out)
        clickhouse.log_backfill(client, target, run, None, total, finished=True)
    print(f"\nbackfilled {len(days)} days, {total:,} rows", file=out)
    return 0
