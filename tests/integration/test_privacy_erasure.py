"""Erasure of a person over real HTTP, then the real pipeline (catch_up through Dagster and dbt).

Two users are seeded through the native and PostHog endpoints: events in several
day partitions, sessions, a person with a merged anonymous id, dead letters
(an invalid event, a broken body, a gzip body). One is erased: no table holding a
distinct_id mentions them (every column named distinct_id in every schema, and
the dead-letter payloads), the other is untouched, event_counts stays exact
before and after the pipeline, and after catch-up every mart equals the ground
truth recomputed from the raw events.
"""

from __future__ import annotations

import gzip
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from ingest_api.privacy.dead_letters import payload_mentions
from tests.integration.test_pipeline import assert_marts_match_raw

API = "/api/v1/analytics"
PERSONS = f"{API}/admin/persons"
COUNTS = f"{API}/admin/events/event_counts/"
JSON = {"content-type": "application/json"}


def iso(ts: datetime) -> str:
    return ts.isoformat()


def seed_user(api, user: str, now: datetime, *, only_hours: list[datetime]) -> None:
    """Events in several day partitions (some late: days old), an explicit session, and dead letters."""
    started = now - timedelta(hours=5)
    session = api.post(
        f"{API}/session/start/", json={"distinct_id": user, "device_id": f"{user}-phone", "started_at": iso(started)}
    )
    assert session.status_code in (200, 201), session.text
    session_id = session.json()["session_id"]
    assert (
        api.put(f"{API}/session/{session_id}/end/", json={"ended_at": iso(started + timedelta(minutes=20))}).status_code
        == 200
    )
    shared = [now - timedelta(days=3, hours=2), now - timedelta(days=1, hours=4), now - timedelta(hours=3)]
    events = []
    for i, ts in enumerate(shared + only_hours):
        for j in range(3):
            events.append(
                {
                    "distinct_id": user,
                    "event_type": ["app_open", "screen_view", "purchase"][j],
                    "device_id": f"{user}-phone",
                    "app_version": "1.0",
                    "os_name": "ios",
                    "timestamp": iso(ts + timedelta(minutes=j)),
                    "properties": {"n": i},
                }
            )
    events.append(
        {
            "distinct_id": user,
            "event_type": "in_session",
            "session_id": session_id,
            "timestamp": iso(started + timedelta(minutes=5)),
        }
    )
    events.append({"distinct_id": user, "event_type": ""})  # refused: a dead letter of this user
    response = api.post(f"{API}/batch/", json={"events": events})
    assert response.status_code == 200 and response.json()["accepted"] == len(events) - 1, response.text
    # A broken body, and a gzip body that inflates to broken JSON: dead letters kept as raw bytes.
    broken = b'{"distinct_id": "' + user.encode() + b'", "event_type": "x", '
    assert api.post(f"{API}/capture/", content=broken, headers=JSON).status_code == 400
    gz = api.post(
        f"{API}/batch/", content=gzip.compress(b'{"events": [' + broken), headers={**JSON, "content-encoding": "gzip"}
    )
    assert gz.status_code == 400


def seed_person(api, user: str, now: datetime) -> None:
    """Through the PostHog endpoint: anonymous events, then $identify merging the anonymous id into `user`."""
    anon = f"anon-{user}"
    batch = {
        "api_key": "phc_test",
        "batch": [
            {
                "event": "$screen",
                "distinct_id": anon,
                "properties": {"$set_once": {"first_screen": "home"}},
                "timestamp": iso(now - timedelta(days=2, hours=1)),
                "uuid": str(uuid.uuid4()),
            },
            {
                "event": "$identify",
                "distinct_id": user,
                "properties": {"$anon_distinct_id": anon, "$set": {"email": f"{user}@example.com"}},
                "timestamp": iso(now - timedelta(days=2)),
                "uuid": str(uuid.uuid4()),
            },
        ],
    }
    assert api.post("/batch/", json=batch).json() == {"status": 1}


def distinct_id_columns(db) -> list[tuple[str, str]]:
    return db.execute(
        "SELECT table_schema, table_name FROM information_schema.columns"
        " WHERE column_name = 'distinct_id' AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        " ORDER BY 1, 2"
    ).fetchall()


def rows_mentioning(db, ids: list[str], *, skip: set[tuple[str, str]] = frozenset()) -> dict[str, int]:
    """Rows of every table or view with a distinct_id column whose distinct_id is one of `ids`, plus dead letters."""
    found = {}
    for schema, table in distinct_id_columns(db):
        if (schema, table) in skip:
            continue
        n = db.execute(f'SELECT count(*) FROM "{schema}"."{table}" WHERE distinct_id = ANY(%s)', (ids,)).fetchone()[0]
        if n:
            found[f"{schema}.{table}"] = n
    aliases = db.execute("SELECT count(*) FROM person_distinct_ids WHERE alias = ANY(%s)", (ids,)).fetchone()[0]
    if aliases:
        found["person_distinct_ids.alias"] = aliases
    letters = sum(payload_mentions(bytes(p), ids) for (p,) in db.execute("SELECT payload FROM rejected_events"))
    if letters:
        found["rejected_events.payload"] = letters
    return found


def snapshot_of(db, ids: list[str]) -> dict[str, object]:
    """Everything stored about a user, to show it unchanged."""
    return {
        "events": db.execute(
            'SELECT uuid, "timestamp", properties FROM events WHERE distinct_id = ANY(%s) ORDER BY uuid', (ids,)
        ).fetchall(),
        "sessions": db.execute(
            "SELECT * FROM sessions WHERE distinct_id = ANY(%s) ORDER BY session_id", (ids,)
        ).fetchall(),
        "persons": db.execute("SELECT * FROM persons WHERE distinct_id = ANY(%s)", (ids,)).fetchall(),
        "aliases": db.execute(
            "SELECT * FROM person_distinct_ids WHERE distinct_id = ANY(%s) ORDER BY alias", (ids,)
        ).fetchall(),
        "letters": sorted(
            bytes(p) for (p,) in db.execute("SELECT payload FROM rejected_events") if payload_mentions(bytes(p), ids)
        ),
    }


def raw_counts(db, start, end) -> dict[str, int]:
    return dict(
        db.execute(
            'SELECT event_type, count(*) FROM events WHERE "timestamp" >= %s AND "timestamp" < %s GROUP BY 1',
            (start, end),
        ).fetchall()
    )


def api_counts(admin, start, end) -> dict[str, int]:
    body = admin.get(COUNTS, params={"start": iso(start), "end": iso(end)}).json()
    return {r["event_type"]: r["count"] for r in body["results"]}


@pytest.fixture
def catch_up(pipeline, database_url, tmp_path, monkeypatch):
    """`eventtrack catch-up` in this process, against a Dagster home in tmp_path."""
    from eventtrack.settings import Settings
    from orchestration.runner import catch_up as run_catch_up
    from orchestration.runner import prepare_dagster

    settings = Settings(database_url=database_url, data_dir=tmp_path)
    env = prepare_dagster(settings)
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    monkeypatch.setenv("DAGSTER_PG_URL", env["DAGSTER_PG_URL"])
    return lambda: run_catch_up(settings)


def test_erasure_leaves_no_trace_keeps_the_other_user_and_aggregates_exact(api, admin, db, catch_up):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    alice_only = [now - timedelta(days=5, hours=1), now - timedelta(hours=7)]  # a day and an hour nobody else has
    seed_user(api, "alice", now, only_hours=alice_only)
    seed_user(api, "bob", now, only_hours=[now - timedelta(hours=9)])
    seed_person(api, "alice", now)
    seed_person(api, "bob", now)
    # A dead letter of another id that merely looks like alice's: it stays.
    assert api.post(f"{API}/capture/", content=b'{"distinct_id": "alice2", ', headers=JSON).status_code == 400
    alice_ids, bob_ids = ["alice", "anon-alice"], ["bob", "anon-bob"]
    # As if everything arrived an hour ago: settled for the pipeline's arrival watermark.
    db.execute("UPDATE events SET received_at = received_at - interval '1 hour'")
    assert catch_up()
    assert_marts_match_raw(db)

    before = rows_mentioning(db, alice_ids)
    assert {
        "public.events",
        "public.sessions",
        "public.persons",
        "public.person_distinct_ids",
        "rejected_events.payload",
        "analytics.fct_sessions",
        # catch-up ran the churn job: alice's daily activity and churn features (docs/analytics.md "Churn risk").
        "analytics.fct_user_churn_features",
        "analytics_intermediate.int_user_activity_daily",
    } <= set(before)
    assert before["rejected_events.payload"] == 3
    bob_before = snapshot_of(db, bob_ids)
    assert all(bob_before.values())
    window = (now - timedelta(days=7), now + timedelta(hours=1))
    hours_window = (window[0].replace(minute=0), window[1].replace(minute=0))
    assert api_counts(admin, *window) == raw_counts(db, *window)

    # Any id of the person erases the whole person.
    response = admin.delete(f"{PERSONS}/anon-alice/")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["person_distinct_id"] == "alice" and sorted(body["distinct_ids"]) == sorted(alice_ids)
    assert body["deleted"] == {
        "events": before["public.events"],
        "sessions": before["public.sessions"],
        "persons": 1,
        "person_distinct_ids": 1,
        "rejected_events": 3,
        "churn_scores": before.get("analytics.user_churn_scores", 0),
        "churn_features": before["analytics.fct_user_churn_features"]
        + before["analytics_intermediate.int_user_activity_daily"],
    }
    queued = db.execute("SELECT count(*) FROM aggregate_rebuilds").fetchone()[0]
    assert body["aggregate_buckets_queued"] == queued > 0

    # Raw tables and the views over them forget alice at once; fct_sessions (a dbt table) at the next run.
    fct = ("analytics", "fct_sessions")
    assert rows_mentioning(db, alice_ids, skip={fct}) == {}
    assert snapshot_of(db, bob_ids) == bob_before
    assert (
        db.execute(
            "SELECT count(*) FROM rejected_events WHERE payload = %s", (b'{"distinct_id": "alice2", ',)
        ).fetchone()[0]
        == 1
    )
    # Exact at once: the hours queued for rebuild are counted from the raw events, not the stale aggregate.
    assert api_counts(admin, *window) == raw_counts(db, *window)
    assert api_counts(admin, *hours_window) == raw_counts(db, *hours_window)

    db.execute("UPDATE aggregate_rebuilds SET requested_at = requested_at - interval '1 hour'")  # settled
    assert catch_up()
    assert rows_mentioning(db, alice_ids) == {}
    assert_marts_match_raw(db)  # hourly, daily, DAU/WAU/MAU and fct_sessions equal the ground truth
    assert (
        db.execute(
            "SELECT count(*) FROM analytics.agg_events_hourly WHERE hour = %s", (alice_only[1].replace(minute=0),)
        ).fetchone()[0]
        == 0
    )
    assert (
        db.execute(
            "SELECT count(*) FROM analytics.agg_active_users_daily WHERE day = %s", (alice_only[0].date(),)
        ).fetchone()[0]
        == 0
    )
    # The watermark passed the rebuild requests: whole hours now come from the rebuilt aggregate, still exact.
    watermark = db.execute("SELECT max(_ingest_seq_watermark) FROM analytics.agg_events_hourly").fetchone()[0]
    assert watermark >= db.execute("SELECT max(seq) FROM aggregate_rebuilds").fetchone()[0]
    assert api_counts(admin, *window) == raw_counts(db, *window)
    assert api_counts(admin, *hours_window) == raw_counts(db, *hours_window)
    assert snapshot_of(db, bob_ids) == bob_before

    # The audit row: who and what, with counts, and no trace of the id itself.
    audit = admin.get(f"{API}/admin/audit-log/", params={"action": "erase_person"}).json()["results"]
    assert (
        len(audit) == 1 and audit[0]["admin_key_name"] == "tests" and audit[0]["details"]["deleted"] == body["deleted"]
    )
    assert (
        admin.get(f"{API}/admin/audit-log/", params={"distinct_id": "anon-alice"}).json()["results"][0]["id"]
        == body["audit_id"]
    )
    assert not db.execute("SELECT count(*) FROM audit_log WHERE audit_log::text LIKE '%alice%'").fetchone()[0]

    # Erasing again finds nothing (and is audited again).
    again = admin.delete(f"{PERSONS}/alice/").json()
    assert set(again["deleted"].values()) == {0} and again["aggregate_buckets_queued"] == 0
    assert len(admin.get(f"{API}/admin/audit-log/").json()["results"]) == 2


def test_an_erased_event_resent_by_the_phone_is_not_stored_again(api, admin, db):
    event = {"distinct_id": "carol", "event_type": "purchase", "uuid": str(uuid.uuid4())}
    assert api.post(f"{API}/capture/", json=event).status_code == 200
    assert admin.delete(f"{PERSONS}/carol/").json()["deleted"]["events"] == 1
    assert api.post(f"{API}/capture/", json=event).status_code == 200  # the offline queue resends it
    assert db.execute("SELECT count(*) FROM events WHERE distinct_id = 'carol'").fetchone()[0] == 0
    # A new event of the same user is stored: erasure is not an opt-out.
    assert api.post(f"{API}/capture/", json={**event, "uuid": str(uuid.uuid4())}).status_code == 200
    assert db.execute("SELECT count(*) FROM events WHERE distinct_id = 'carol'").fetchone()[0] == 1
