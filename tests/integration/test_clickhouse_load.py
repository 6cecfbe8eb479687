"""The ClickHouse loader (eventtrack/clickhouse.py) on the real engine in-process (chDB) and the real Postgres."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from dagster import materialize

from eventtrack import clickhouse as ch
from eventtrack_cli.clickhouse_commands import clickhouse_backfill, clickhouse_status
from orchestration.clickhouse import clickhouse_events, load_cron
from orchestration.resources import EventtrackResource
from tests.conftest import RunningServer, settings_for

SETTLE = timedelta(minutes=5)


def plant(
    db,
    n: int,
    *,
    user: str = "u",
    day_offset: int = 0,
    received_ago: timedelta = timedelta(hours=1),
    at: datetime | None = None,
) -> None:
    """n events of users {user}0..{user}9, `day_offset` days ago (or `at`, less a second per event),
    received `received_ago` ago."""
    db.execute(
        """
        INSERT INTO events (uuid, event_type, distinct_id, properties, "timestamp", received_at)
        SELECT gen_random_uuid(), 'e' || (i %% 3), %(user)s || (i %% 10), jsonb_build_object('i', i, 'tag', 'x'),
               coalesce(%(at)s, now() - make_interval(days => %(days)s)) - make_interval(secs => i), now() - %(ago)s
        FROM generate_series(1, %(n)s) AS i
        """,
        {"n": n, "user": user, "days": day_offset, "ago": received_ago, "at": at},
    )


def uuids_in_postgres(db) -> list[str]:
    return sorted(str(u) for (u,) in db.execute("SELECT uuid FROM events"))


def uuids_in_clickhouse(client, target) -> list[str]:
    return sorted(str(u) for (u,) in client.query(f"SELECT uuid FROM {target.database}.events").result_rows)


def test_clickhouse_load_copies_every_settled_arrival_once(db, clickhouse):
    client, target = clickhouse
    plant(db, 250)
    plant(db, 7, user="young", received_ago=timedelta(seconds=1))  # the newest arrivals, not settled yet
    first = ch.load_arrivals(db, client, target, SETTLE)
    assert (first.lo, first.rows) == (0, 250)
    # Late events (old timestamps) arrive after them; settled, they carry the watermark past the young
    # rows (the rule is about arrival order: everything at or below a settled ingest_seq is read).
    plant(db, 40, user="late", day_offset=3)
    second = ch.load_arrivals(db, client, target, SETTLE)
    assert (second.lo, second.rows) == (first.hi, 47)
    # An idle load changes nothing.
    idle = ch.load_arrivals(db, client, target, SETTLE)
    assert (idle.lo, idle.hi, idle.rows) == (second.hi, second.hi, 0)
    in_ch = uuids_in_clickhouse(client, target)
    assert len(set(in_ch)) == 297 and in_ch == uuids_in_postgres(db)
    # The properties arrive as Postgres's text of the jsonb.
    query = f"SELECT groupUniqArray(JSONExtractString(properties, 'tag')) FROM {target.database}.events"
    assert client.query(query).result_rows[0][0] == ["x"]


def test_clickhouse_load_that_dies_before_its_done_record_is_redone_without_a_duplicate(db, clickhouse):
    client, target = clickhouse
    plant(db, 120)
    ch.load_arrivals(db, client, target, SETTLE)
    # Wider than one block: the redo must find every block already there.
    db.execute("SELECT setval('events_ingest_seq', nextval('events_ingest_seq') + %s)", (ch.BLOCK_SEQ,))
    plant(db, 60, user="a")
    db.execute("SELECT setval('events_ingest_seq', nextval('events_ingest_seq') + %s)", (ch.BLOCK_SEQ,))
    plant(db, 60, user="b")

    def die():
        raise RuntimeError("killed between the inserts and the done record")

    with pytest.raises(RuntimeError):
        ch.load_arrivals(db, client, target, SETTLE, after_insert=die)
    loaded, unfinished = ch.watermark(client, target)
    assert unfinished is not None and unfinished[0] == loaded
    # Meanwhile a person of that range is erased (so the redone blocks differ from the first try) and
    # more events arrive: the redo covers exactly the dead load's range, the next load the rest.
    db.execute("DELETE FROM events WHERE distinct_id = 'a1'")
    db.execute("INSERT INTO clickhouse_erasures (distinct_ids) VALUES ('{a1}')")
    plant(db, 5, user="c")
    redo = ch.load_arrivals(db, client, target, SETTLE)
    assert redo.redone and (redo.lo, redo.hi) == unfinished and redo.rows == 114 and redo.erasures == 1
    after = ch.load_arrivals(db, client, target, SETTLE)
    assert not after.redone and after.rows == 5
    in_ch = uuids_in_clickhouse(client, target)
    assert in_ch == uuids_in_postgres(db) and len(set(in_ch)) == 239


def test_clickhouse_blocks_are_the_same_for_the_same_range():
    assert list(ch.blocks(5, 250_000, 100_000)) == [(5, 100_000), (100_000, 200_000), (200_000, 250_000)]
    assert list(ch.blocks(7, 7)) == []


def test_clickhouse_erasure_is_queued_with_the_erasure_and_applied_by_the_next_load(db, clickhouse, database_url):
    client, target = clickhouse
    plant(db, 30, user="keep")
    plant(db, 30, user="gone")
    ch.load_arrivals(db, client, target, SETTLE)
    settings = settings_for(database_url, clickhouse_url="chdb://unused-by-the-api")
    key = _admin_key(database_url)  # before the server starts, which reads the keys then
    with RunningServer(settings) as server:
        answer = httpx.delete(
            f"{server.url}/api/v1/analytics/admin/persons/gone3/", headers={"Authorization": f"Bearer {key}"}
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["clickhouse"] == "queued: deleted from ClickHouse by its next load"
    (details,) = db.execute("SELECT details FROM audit_log WHERE action = 'erase_person'").fetchone()
    assert details["clickhouse"] == body["clickhouse"]
    assert db.execute("SELECT distinct_ids FROM clickhouse_erasures").fetchall() == [(["gone3"],)]
    assert client.query(f"SELECT count() FROM {target.database}.events WHERE distinct_id = 'gone3'").result_rows == [
        (3,)
    ]
    result = ch.load_arrivals(db, client, target, SETTLE)
    assert result.erasures == 1
    assert uuids_in_clickhouse(client, target) == uuids_in_postgres(db)
    assert db.execute("SELECT count(*) FROM clickhouse_erasures").fetchone() == (0,)


def test_clickhouse_erasure_without_clickhouse_keeps_no_ids(db, api, admin_key):
    plant(db, 3, user="p")
    answer = api.delete("/api/v1/analytics/admin/persons/p1/", headers={"Authorization": f"Bearer {admin_key}"})
    assert answer.status_code == 200 and "clickhouse" not in answer.json()
    assert db.execute("SELECT count(*) FROM clickhouse_erasures").fetchone() == (0,)


def test_clickhouse_asset_loads_drops_days_past_retention_and_shows_its_lag(db, clickhouse, chdb_url, database_url):
    client, target = clickhouse
    plant(db, 20, user="old", day_offset=5)
    plant(db, 20, user="new", day_offset=0)
    resource = EventtrackResource(database_url=database_url, clickhouse_url=chdb_url, events_retention_days=3)
    result = materialize([clickhouse_events], resources={"eventtrack": resource})
    assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = {k: v.value for k, v in event.materialization.metadata.items()}
    (newest,) = db.execute("SELECT max(ingest_seq) FROM events").fetchone()
    assert metadata["newest_ingest_seq_loaded"] == newest and metadata["rows"] == 40
    assert metadata["seconds_behind_newest_arrival"] == 0.0
    old_day = (datetime.now(UTC) - timedelta(days=5)).date()
    assert old_day.isoformat() in metadata["days_dropped"]
    rows = client.query(f"SELECT DISTINCT substring(distinct_id, 1, 3) FROM {target.database}.events").result_rows
    assert rows == [("new",)]


def test_clickhouse_cluster_ddl_is_replicated_sharded_and_parses(clickhouse):
    client, _ = clickhouse
    target = ch.Target.parse("http://u:p@ch1:8123/analytics", cluster="events_cluster")
    ddl = ch.schema_ddl(target)
    assert all(" ON CLUSTER events_cluster" in statement for statement in ddl)
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/analytics/events_local', '{replica}')" in ddl[1]
    assert "Distributed(events_cluster, analytics, events_local, cityHash64(distinct_id))" in ddl[2]
    drop = target.drop_day(datetime(2026, 1, 2).date())
    assert drop == "ALTER TABLE analytics.events_local ON CLUSTER events_cluster DROP PARTITION '2026-01-02'"
    for statement in [*ddl, drop]:  # ClickHouse's own parser accepts each one
        client.query("SELECT formatQuery({q:String})", parameters={"q": statement})


@pytest.mark.parametrize(
    ("url", "problem"),
    [("postgres://x/y", "must start with"), ("http://h/bad-name", "not a plain identifier")],
)
def test_clickhouse_url_mistakes_are_named(url, problem):
    with pytest.raises(ch.ClickHouseConfigError, match=problem):
        ch.Target.parse(url)


def test_clickhouse_load_schedule_from_the_setting():
    assert load_cron(5) == "*/5 * * * *" and load_cron(120) == "0 */2 * * *"
    with pytest.raises(ValueError):
        load_cron(90)


def _admin_key(database_url: str) -> str:
    from ingest_api.admin.key_store import create_admin_key

    _, key = create_admin_key(database_url, "clickhouse-test")
    return key


def test_clickhouse_status_finds_a_damaged_day_and_a_resumed_backfill_repairs_it(
    db, clickhouse, chdb_url, database_url, monkeypatch
):
    client, target = clickhouse
    # Just after UTC midnight, with the commands' sessions in a zone behind UTC: a UTC day must not be read
    # as the session's local day.
    monkeypatch.setenv("PGTZ", "America/St_Johns")
    midnight = datetime.now(UTC).replace(hour=0, minute=10, second=0, microsecond=0)
    for days_ago in (2, 1, 0):
        plant(db, 30, user=f"d{days_ago}-", at=midnight - timedelta(days=days_ago))
    ch.load_arrivals(db, client, target, SETTLE)
    settings = settings_for(database_url, clickhouse_url=chdb_url)
    out = io.StringIO()
    assert clickhouse_status(settings, out) == 0, out.getvalue()
    # A day lost and one day half lost on the ClickHouse side (a restored backup, say).
    day2, day1, _ = (datetime.now(UTC).date() - timedelta(days=n) for n in (2, 1, 0))
    client.command(f"ALTER TABLE {target.database}.events DROP PARTITION '{day2}'")
    client.command(f"DELETE FROM {target.database}.events WHERE distinct_id = 'd1-3'")
    out = io.StringIO()
    assert clickhouse_status(settings, out) == 1
    assert f"{day2}         30           0  DIFFERS" in out.getvalue()
    assert f"{day1}         30          27  DIFFERS" in out.getvalue()
    # The backfill dies on its second day; run again, it resumes after the first.
    real_backfill_day = ch.backfill_day

    def dies_on_day1(pg, client_, target_, day):
        if day == day1:
            raise KeyboardInterrupt
        return real_backfill_day(pg, client_, target_, day)

    monkeypatch.setattr(ch, "backfill_day", dies_on_day1)
    with pytest.raises(KeyboardInterrupt):
        clickhouse_backfill(settings, day2, io.StringIO())
    monkeypatch.setattr(ch, "backfill_day", real_backfill_day)
    progress = io.StringIO()
    assert clickhouse_backfill(settings, None, progress) == 0
    assert f"after {day2}" in progress.getvalue() and "backfilled 2 days, 60 rows" in progress.getvalue()
    assert clickhouse_status(settings, io.StringIO()) == 0
    assert uuids_in_clickhouse(client, target) == uuids_in_postgres(db)


def test_clickhouse_first_backfill_takes_the_history_and_the_loader_only_what_follows(
    db, clickhouse, chdb_url, database_url
):
    client, target = clickhouse
    plant(db, 50, user="h", day_offset=1)
    plant(db, 50, user="i", day_offset=0)
    settings = settings_for(database_url, clickhouse_url=chdb_url)
    progress = io.StringIO()
    assert clickhouse_backfill(settings, None, progress) == 0
    assert "backfilled 2 days, 100 rows" in progress.getvalue()
    plant(db, 5, user="after")
    assert ch.load_arrivals(db, client, target, SETTLE).rows == 5
    in_ch = uuids_in_clickhouse(client, target)
    assert in_ch == uuids_in_postgres(db) and len(set(in_ch)) == 105
