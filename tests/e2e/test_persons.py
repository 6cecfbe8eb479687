"""Persons from $set / $set_once / $identify / $create_alias, through the PostHog endpoints."""

from __future__ import annotations

import gzip

import orjson
from posthog import Posthog

from tests.e2e.test_posthog_capture import IOS_BATCH


def persons(db):
    return {r[0]: r[1] for r in db.execute("SELECT distinct_id, properties FROM persons").fetchall()}


def aliases(db):
    return dict(db.execute("SELECT alias, distinct_id FROM person_distinct_ids").fetchall())


def test_sdk_set_set_once_identify_and_alias_build_one_person(server, api, db):
    client = Posthog("phc_test", host=server.url, sync_mode=True, max_retries=0, disable_geoip=True)
    client.set_once(distinct_id="anon-1", properties={"first_screen": "onboarding", "plan": "trial"})
    client.set(distinct_id="anon-1", properties={"theme": "dark"})
    client.capture(
        "$identify",
        distinct_id="user-9",
        properties={"$anon_distinct_id": "anon-1", "$set": {"plan": "pro", "email": "u9@example.com"}},
    )
    client.set_once(distinct_id="user-9", properties={"first_screen": "ignored: already set"})
    client.alias(previous_id="user-9", distinct_id="user-9-crm")
    client.set(distinct_id="user-9-crm", properties={"crm_id": 42})
    client.set(distinct_id="anon-1", properties={"last_seen_as": "anon"})  # an old id still reaches the person
    client.shutdown()

    assert persons(db) == {
        "user-9": {
            "first_screen": "onboarding",
            "plan": "pro",
            "theme": "dark",
            "email": "u9@example.com",
            "crm_id": 42,
            "last_seen_as": "anon",
        }
    }
    assert aliases(db) == {"anon-1": "user-9", "user-9-crm": "user-9"}
    first_seen, last_seen = db.execute("SELECT first_seen, last_seen FROM persons").fetchone()
    assert first_seen <= last_seen
    # Events themselves are stored as they came, with $set kept in properties.
    assert db.execute("SELECT count(*) FROM events WHERE event_type = '$set'").fetchone()[0] == 3


def test_ios_identify_in_a_gzip_batch_creates_the_person_and_the_alias(api, db):
    response = api.post(
        "/batch/",
        content=gzip.compress(orjson.dumps(IOS_BATCH)),
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert response.json() == {"status": 1}
    assert persons(db) == {"user@example.com": {"email": "user@example.com", "plan": "pro"}}
    assert aliases(db) == {"01HZXK0DN7N9V5R7Q8Y2W3E4R5": "user@example.com"}
    # A resend (SDK retry) changes nothing.
    api.post(
        "/batch/",
        content=gzip.compress(orjson.dumps(IOS_BATCH)),
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert persons(db) == {"user@example.com": {"email": "user@example.com", "plan": "pro"}}
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 2


def test_events_without_person_changes_write_no_person(api, db):
    api.post("/batch/", json={"batch": [{"event": "tap", "distinct_id": "u", "properties": {"a": 1}}]})
    assert persons(db) == {}
