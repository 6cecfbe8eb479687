"""The capture and batch endpoints over real HTTP (uvicorn) against the real Postgres."""

from __future__ import annotations

import gzip
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

CAPTURE = "/api/v1/analytics/capture/"
BATCH = "/api/v1/analytics/batch/"
JSON = {"content-type": "application/json"}


def post_raw(api, path, body: bytes, headers=None):
    return api.post(path, content=body, headers={**JSON, **(headers or {})})


def count(db, sql="SELECT count(*) FROM events", params=()):
    return db.execute(sql, params).fetchone()[0]


def dead_letters(db):
    return db.execute(
        "SELECT endpoint, reason, fields, event_index, payload, payload_bytes, payload_truncated, remote_addr"
        " FROM rejected_events ORDER BY id"
    ).fetchall()


def assert_error(response, status, code, field=None):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail", "fields"}
    assert body["error"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    if field:
        assert field in body["fields"], body
    return body


# --- the happy paths -------------------------------------------------------


def test_acknowledged_capture_is_in_the_table_with_every_column(api, db):
    event_uuid = str(uuid.uuid4())
    response = api.post(
        CAPTURE,
        json={
            "distinct_id": "user-1",
            "event_type": "purchase",
            "properties": {"amount": 9.99, "items": ["a", "b"]},
            "device_id": "dev-1",
            "session_id": "s-1",
            "app_version": "2.3.0",
            "os_name": "iOS",
            "os_version": "17.1",
            "timestamp": "2026-11-20T10:00:00Z",
            "uuid": event_uuid,
        },
    )
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "uuid": event_uuid, "warnings": []}
    row = db.execute(
        "SELECT event_type, distinct_id, properties, device_id, session_id, app_version, os_name, os_version,"
        " timestamp, client_timestamp, received_at, ingest_seq FROM events WHERE uuid = %s",
        (event_uuid,),
    ).fetchone()
    assert row[:8] == (
        "purchase",
        "user-1",
        {"amount": 9.99, "items": ["a", "b"]},
        "dev-1",
        "s-1",
        "2.3.0",
        "iOS",
        "17.1",
    )
    assert row[8] == row[9] == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert row[11] > 0


def test_path_without_trailing_slash_answers_too(api, db):
    assert api.post(CAPTURE.rstrip("/"), json={"distinct_id": "u", "event": "x"}).status_code == 200
    assert api.post(BATCH.rstrip("/"), json={"events": [{"distinct_id": "u", "event": "y"}]}).status_code == 200
    assert count(db) == 2


def test_batch_keeps_valid_events_and_dead_letters_invalid_ones(api, db):
    response = api.post(
        BATCH,
        json={
            "events": [
                {"distinct_id": "u1", "event_type": "a"},
                {"distinct_id": True, "event_type": "b"},
                {"distinct_id": "u2", "event": "c"},
                {"event_type": "d"},
            ]
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 2
    assert [r["index"] for r in body["rejected"]] == [1, 3]
    assert body["rejected"][0]["error"] == "validation_error"
    assert "distinct_id" in body["rejected"][0]["fields"]
    assert sorted(r[0] for r in db.execute("SELECT event_type FROM events")) == ["a", "c"]
    letters = dead_letters(db)
    assert [(row[0], row[1], row[3]) for row in letters] == [
        ("batch", "validation_error", 1),
        ("batch", "validation_error", 3),
    ]
    assert orjson.loads(letters[0][4]) == {"distinct_id": True, "event_type": "b"}
    assert letters[0][7] is None  # STORE_CLIENT_IP is off by default (tests/e2e/test_privacy_ip.py)


def test_batch_field_of_posthog_sdks_is_accepted(api, db):
    response = api.post(BATCH, json={"batch": [{"distinct_id": "u", "event": "x"}, {"distinct_id": "v", "event": "y"}]})
    assert response.json()["accepted"] == 2 and count(db) == 2


def test_gzip_body_is_accepted(api, db):
    body = gzip.compress(orjson.dumps({"events": [{"distinct_id": "u", "event": f"e{i}"} for i in range(50)]}))
    response = post_raw(api, BATCH, body, {"content-encoding": "gzip"})
    assert response.status_code == 200 and response.json()["accepted"] == 50
    assert count(db) == 50


# --- dedup and clock skew --------------------------------------------------


def test_resent_event_with_another_sent_at_is_stored_once(api, db):
    event = {"distinct_id": "u", "event": "x", "uuid": str(uuid.uuid4()), "timestamp": "2026-11-24T10:00:00Z"}
    now = datetime.now(UTC)
    for delay in (0, 45, 3600):  # the app retries later; its sent_at moves, so would the corrected time
        sent_at = (now + timedelta(seconds=delay)).isoformat()
        response = api.post(CAPTURE, json={**event, "sent_at": sent_at})
        assert response.status_code == 200 and response.json()["accepted"] == 1
    response = api.post(BATCH, json={"events": [event, event], "sent_at": now.isoformat()})
    assert response.json()["accepted"] == 2  # counted as accepted so SDKs stop retrying
    assert count(db, "SELECT count(*) FROM events WHERE uuid = %s", (event["uuid"],)) == 1


def test_duplicates_inside_one_batch_are_stored_once(api, db):
    event = {"distinct_id": "u", "event": "x", "uuid": str(uuid.uuid4())}
    assert api.post(BATCH, json={"events": [event] * 5}).status_code == 200
    assert count(db) == 1


def test_clock_skew_is_corrected_from_sent_at(api, db):
    # The phone's clock runs 2 hours behind ours.
    phone_now = datetime.now(UTC) - timedelta(hours=2)
    response = api.post(
        CAPTURE,
        json={
            "distinct_id": "u",
            "event": "x",
            "timestamp": (phone_now - timedelta(minutes=5)).isoformat(),
            "sent_at": phone_now.isoformat(),
        },
    )
    assert response.status_code == 200
    ts, received, client_ts = db.execute("SELECT timestamp, received_at, client_timestamp FROM events").fetchone()
    assert abs((received - ts) - timedelta(minutes=5)) < timedelta(seconds=1)
    assert abs(client_ts - (phone_now - timedelta(minutes=5))) < timedelta(milliseconds=1)


def test_far_future_timestamp_is_clamped_with_a_warning(api, db):
    response = api.post(CAPTURE, json={"distinct_id": "u", "event": "x", "timestamp": "9999-12-31T00:00:00Z"})
    assert response.status_code == 200
    assert response.json()["warnings"] == ["timestamp_clamped_to_received_at"]
    ts, received, props = db.execute("SELECT timestamp, received_at, properties FROM events").fetchone()
    assert ts == received and props["$ingestion_warnings"] == ["timestamp_clamped_to_received_at"]


def test_event_older_than_retention_is_refused_as_too_old(api, db):
    old = (datetime.now(UTC) - timedelta(days=120)).isoformat()
    assert_error(
        api.post(CAPTURE, json={"distinct_id": "u", "event": "x", "timestamp": old}), 400, "too_old", "timestamp"
    )
    response = api.post(
        BATCH,
        json={"events": [{"distinct_id": "u", "event": "x", "timestamp": old}, {"distinct_id": "u", "event": "y"}]},
    )
    assert response.json()["rejected"][0]["error"] == "too_old"
    assert count(db) == 1
    assert [row[1] for row in dead_letters(db)] == ["too_old", "too_old"]


def test_year_0001_timestamp_is_too_old(api, db):
    assert_error(
        api.post(CAPTURE, json={"distinct_id": "u", "event": "x", "timestamp": "0001-01-01T00:00:00Z"}), 400, "too_old"
    )


# --- bad input: one test per rule ------------------------------------------


def test_malformed_json_is_400_and_the_raw_body_is_kept(api, db):
    body = b'{"distinct_id": "u", "event": '
    assert_error(post_raw(api, CAPTURE, body), 400, "invalid_json", "body")
    (letter,) = dead_letters(db)
    assert letter[0] == "capture" and letter[1] == "invalid_json"
    assert bytes(letter[4]) == body and letter[5] == len(body) and not letter[6]
    assert count(db) == 0


def test_body_that_is_not_an_object_is_400(api, db):
    assert_error(post_raw(api, CAPTURE, b"[1, 2]"), 400, "not_an_object")
    assert_error(post_raw(api, BATCH, b'"events"'), 400, "not_an_object")
    assert [row[1] for row in dead_letters(db)] == ["not_an_object", "not_an_object"]


def test_batch_without_an_events_list_is_400(api, db):
    assert_error(api.post(BATCH, json={"events": {"a": 1}}), 400, "invalid_batch", "events")
    assert dead_letters(db)[0][1] == "invalid_batch"


def test_unreadable_content_type_is_415_and_kept(api, db):
    response = api.post(CAPTURE, content=b"<event/>", headers={"content-type": "application/xml"})
    assert_error(response, 415, "unsupported_media_type", "content-type")
    (letter,) = dead_letters(db)
    assert letter[1] == "unsupported_media_type" and bytes(letter[4]) == b"<event/>"


def test_unknown_content_encoding_is_415(api, db):
    assert_error(post_raw(api, CAPTURE, b"{}", {"content-encoding": "br"}), 415, "unsupported_encoding")
    assert dead_letters(db)[0][1] == "unsupported_encoding"


def test_body_over_the_capture_limit_is_413_from_its_content_length_and_dead_lettered(api, db):
    body = orjson.dumps({"distinct_id": "u", "event": "x", "properties": {"blob": "a" * (1024 * 1024 + 10)}})
    assert_error(post_raw(api, CAPTURE, body), 413, "payload_too_large", "body")
    (letter,) = dead_letters(db)
    # Refused from the header, before reading: nothing of the body is kept, its declared size is.
    assert letter[1] == "payload_too_large" and letter[6]  # truncated
    assert bytes(letter[4]) == b"" and letter[5] == len(body)
    assert count(db) == 0
    assert api.post(CAPTURE, json={"distinct_id": "u", "event": "x"}).status_code == 200  # the connection serves on


def test_chunked_body_over_the_limit_is_refused_while_reading(api, db):
    def chunks():
        for _ in range(40):  # 2.5 MiB, no Content-Length
            yield b" " * 65536

    response = api.post(CAPTURE, content=chunks(), headers=JSON)
    assert_error(response, 413, "payload_too_large")
    assert dead_letters(db)[0][6]


def test_gzip_bomb_is_refused_by_decompressed_size(api, db):
    bomb = gzip.compress(b'{"events": [' + b" " * (30 * 1024 * 1024) + b"]}")
    assert len(bomb) < 100_000
    assert_error(post_raw(api, BATCH, bomb, {"content-encoding": "gzip"}), 413, "payload_too_large")
    assert dead_letters(db)[0][1] == "payload_too_large"


def test_truncated_gzip_is_400(api, db):
    data = gzip.compress(orjson.dumps({"distinct_id": "u", "event": "x" * 500}))
    assert_error(post_raw(api, CAPTURE, data[:-20], {"content-encoding": "gzip"}), 400, "invalid_gzip")
    assert dead_letters(db)[0][1] == "invalid_gzip"


def test_empty_batch_is_400(api, db):
    assert_error(api.post(BATCH, json={"events": []}), 400, "empty_batch", "events")
    assert dead_letters(db)[0][1] == "empty_batch"


def test_batch_over_the_event_count_limit_is_400(api, db):
    events = [{"distinct_id": "u", "event": "x"}] * 1001
    assert_error(api.post(BATCH, json={"events": events}), 400, "batch_too_large", "events")
    assert count(db) == 0 and dead_letters(db)[0][1] == "batch_too_large"


def test_event_over_the_per_event_limit_is_refused_alone(api, db):
    big = {"distinct_id": "u", "event": "big", "properties": {"blob": "a" * 70_000}}
    assert_error(api.post(CAPTURE, json=big), 413, "event_too_large", "event")
    response = api.post(BATCH, json={"events": [big, {"distinct_id": "u", "event": "small"}]})
    assert response.json()["accepted"] == 1
    assert response.json()["rejected"][0]["error"] == "event_too_large"


def test_nul_characters_are_stripped(api, db):
    body = b'{"distinct_id": "u\\u0000v", "event": "x", "properties": {"k\\u0000": "a\\u0000b"}}'
    assert post_raw(api, CAPTURE, body).status_code == 200
    assert db.execute("SELECT distinct_id, properties FROM events").fetchone() == ("uv", {"k": "ab"})


def test_lone_surrogates_are_replaced(api, db):
    body = b'{"distinct_id": "u", "event": "x", "properties": {"s": "a\\ud800b"}}'
    assert post_raw(api, CAPTURE, body).status_code == 200
    assert db.execute("SELECT properties FROM events").fetchone()[0] == {"s": "a\ufffdb"}


def test_deeply_nested_properties_are_refused_with_a_field_error(api, db):
    props: dict = {}
    node = props
    for _ in range(40):
        node["n"] = {}
        node = node["n"]
    assert_error(
        api.post(CAPTURE, json={"distinct_id": "u", "event": "x", "properties": props}), 400, "too_deep", "properties"
    )
    assert dead_letters(db)[0][1] == "too_deep"


def test_nesting_beyond_the_parser_is_invalid_json(api, db):
    body = b'{"events": [' + b"[" * 5000 + b"]" * 5000 + b"]}"
    assert_error(post_raw(api, BATCH, body), 400, "invalid_json")


def test_numbers_beyond_a_double_refuse_only_that_event(api, db):
    body = b'{"events": [{"distinct_id": "u", "event": "x", "properties": {"v": 1e400}}, {"distinct_id": "u", "event": "ok"}]}'
    response = post_raw(api, BATCH, body)
    assert response.status_code == 200
    assert response.json()["accepted"] == 1 and response.json()["rejected"][0]["error"] == "invalid_number"
    assert_error(
        post_raw(api, CAPTURE, b'{"distinct_id": "u", "event": "x", "properties": {"v": NaN}}'), 400, "invalid_number"
    )


def test_huge_integers_are_stored_as_doubles(api, db):
    body = b'{"distinct_id": "u", "event": "x", "properties": {"v": 123456789012345678901234567890}}'
    assert post_raw(api, CAPTURE, body).status_code == 200
    assert db.execute("SELECT (properties->>'v')::float8 FROM events").fetchone()[0] == pytest.approx(
        1.2345678901234568e29
    )


def test_invalid_timestamp_is_a_field_error(api, db):
    assert_error(
        api.post(CAPTURE, json={"distinct_id": "u", "event": "x", "timestamp": "2026-02-30T00:00:00"}),
        400,
        "validation_error",
        "timestamp",
    )
    assert_error(
        api.post(CAPTURE, json={"distinct_id": "u", "event": "x", "sent_at": 5}), 400, "validation_error", "sent_at"
    )
    assert_error(
        api.post(BATCH, json={"events": [{"distinct_id": "u", "event": "x"}], "sent_at": "nope"}),
        400,
        "validation_error",
        "sent_at",
    )


def test_non_string_ids_are_field_errors(api, db):
    body = assert_error(
        api.post(CAPTURE, json={"distinct_id": {"id": 1}, "event": 7, "device_id": 5, "session_id": [1], "uuid": 3}),
        400,
        "validation_error",
    )
    assert set(body["fields"]) == {"distinct_id", "event_type", "device_id", "session_id", "uuid"}
    assert count(db) == 0 and dead_letters(db)[0][1] == "validation_error"


def test_sql_and_format_strings_round_trip_byte_for_byte(api, db):
    nasty = "'); DROP TABLE events; -- %s %(x)s {0} \\x00 \t\n\\"
    assert (
        api.post(CAPTURE, json={"distinct_id": nasty, "event": nasty, "properties": {nasty: nasty}}).status_code == 200
    )
    assert db.execute("SELECT distinct_id, event_type, properties FROM events").fetchone() == (
        nasty,
        nasty,
        {nasty: nasty},
    )


def test_unknown_route_is_a_json_404(api, db):
    assert_error(api.get("/api/v1/analytics/nope/"), 404, "not_found")
    assert_error(api.get(CAPTURE), 405, "method_not_allowed")


def test_one_event_and_a_large_batch_store_the_same_rows_once(api, db):
    """The sink serializes each group as one JSON document for Postgres: a row alone and a row among
    hundreds come out the same, and a large group with resends of stored events and repeats of its own
    stores each event once."""
    nasty = "é 中文 🎉 '); -- %s {0} \\ \t\n"
    fields = {
        "event_type": nasty,
        "properties": {nasty: [1.5, None, True, {"n": 10**15}]},
        "device_id": "d",
        "session_id": "s",
        "app_version": "1.0",
        "os_name": "iOS",
        "os_version": "17",
        "timestamp": "2026-11-20T10:00:00.123456Z",
    }
    small = [{"distinct_id": f"small-{i}", "uuid": str(uuid.uuid4()), **fields} for i in range(10)]
    for event in small:
        assert api.post(CAPTURE, json=event).status_code == 200
    large = [{"distinct_id": f"large-{i}", "uuid": str(uuid.uuid4()), **fields} for i in range(500)]
    resent = large + small + large[:5]  # one request: one group
    response = api.post(BATCH, json={"events": resent})
    assert response.status_code == 200 and response.json()["accepted"] == len(resent)
    assert count(db) == len(small) + len(large)
    assert count(db, "SELECT count(DISTINCT uuid) FROM event_uuids") == len(small) + len(large)
    columns = "event_type, properties, device_id, session_id, app_version, os_name, os_version, timestamp"
    rows = db.execute(
        f"SELECT DISTINCT {columns}, client_timestamp - timestamp FROM events WHERE distinct_id IN (%s, %s)",
        ("small-0", "large-0"),
    ).fetchall()
    assert len(rows) == 1, rows  # alone or among hundreds: the same values
    assert rows[0][:2] == (nasty, {nasty: [1.5, None, True, {"n": 10**15}]})
