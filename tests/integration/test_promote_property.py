"""`eventtrack promote-property`: the expression index exists on every partition and the filters use it."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from eventtrack.analytics.segments import filters_sql, parse_filters
from ingest_api.promote import index_name

COUNTS = "/api/v1/analytics/admin/events/event_counts/"


def run_cli(database_url: str, *args: str) -> str:
    env = {**os.environ, "DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-m", "eventtrack_cli.main", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def plan_of(db, raw_filter: str, start: datetime, end: datetime) -> str:
    """EXPLAIN of the filtered count query the counts endpoint runs."""
    where, params = filters_sql(parse_filters([raw_filter]))
    for name in params:
        where = where.replace(f":{name}", f"%({name})s")
    query = f'EXPLAIN SELECT e.event_type, count(*) FROM events e WHERE e."timestamp" >= %(start)s AND e."timestamp" < %(end)s{where} GROUP BY 1'
    return "\n".join(r[0] for r in db.execute(query, {**params, "start": start, "end": end}))


def test_promoted_properties_are_indexed_on_every_partition_and_used_by_filters(db, database_url, admin):
    day = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    db.execute(
        'INSERT INTO events (uuid, event_type, distinct_id, properties, "timestamp", received_at)'
        " SELECT gen_random_uuid(), 'purchase', 'u' || (i %% 300),"
        "  jsonb_build_object('plan', 'p' || (i %% 500), 'price', i %% 1000), %s + (i %% 86400) * interval '1 second', now()"
        " FROM generate_series(1, 30000) AS i",
        (day,),
    )
    later = datetime.now(UTC).date() + timedelta(days=30)
    text_index, numeric_index = index_name("plan", "text"), index_name("price", "numeric")
    try:
        out = run_cli(database_url, "promote-property", "plan")
        assert text_index in out
        run_cli(database_url, "promote-property", "price", "--type", "numeric")
        assert "built on 0 partition(s)" in run_cli(database_url, "promote-property", "plan")  # idempotent
        listed = run_cli(database_url, "list-promoted-properties")
        assert f"plan\ttext\t{text_index}\tvalid" in listed and f"price\tnumeric\t{numeric_index}\tvalid" in listed

        partitions = db.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass").fetchone()[0]
        children = db.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass", (text_index,)
        ).fetchone()[0]
        assert children == partitions > 1
        db.execute("SELECT ensure_event_partitions(%s, %s)", (later, later))  # a partition made later has it too
        assert (
            db.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass", (text_index,)).fetchone()[0]
            == partitions + 1
        )

        db.execute("ANALYZE events")
        start, end = day, day + timedelta(days=1)
        assert text_index in plan_of(db, "properties.plan=p7", start, end)
        assert numeric_index in plan_of(db, "properties.price>=998", start, end)
        assert "events_prop_" not in plan_of(db, "properties.other=p7", start, end)  # not promoted: no index

        # Same answers through the API.
        window = {"start": start.isoformat(), "end": end.isoformat()}
        assert admin.get(COUNTS, params={**window, "filter": "properties.plan=p7"}).json()["total"] == 60
        assert admin.get(COUNTS, params={**window, "filter": "properties.price>=998"}).json()["total"] == 60
    finally:
        db.execute(f'DROP INDEX IF EXISTS "{text_index}", "{numeric_index}"')
        db.execute("DELETE FROM promoted_properties")
        db.execute("DROP TABLE IF EXISTS events_p" + later.strftime("%Y%m%d"))
