"""PostHog-compatible capture over real HTTP: the real posthog SDK, and byte-for-byte mobile SDK bodies."""

from __future__ import annotations

import base64
import gzip
import logging
import platform
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import orjson
import pytest
from posthog import Posthog

OK = {"status": 1}


def sdk(server, key="phc_test", **options) -> Posthog:
    return Posthog(
        key,
        host=server.url,
        sync_mode=True,
        max_retries=0,
        disable_geoip=True,
        enable_exception_autocapture=False,
        **options,
    )


def stored(db, event_type):
    return db.execute(
        "SELECT distinct_id, properties, session_id, device_id, app_version, os_name, os_version, timestamp, uuid"
        " FROM events WHERE event_type = %s ORDER BY timestamp",
        (event_type,),
    ).fetchall()


def test_an_event_sent_by_the_posthog_sdk_is_stored_with_its_columns_mapped(server, api, db):
    client = sdk(server)
    event_uuid = str(uuid.uuid4())
    client.capture(
        "checkout",
        distinct_id="user-1",
        properties={"$session_id": "sess-1", "$device_id": "dev-1", "$app_version": "3.1.0", "amount": 12},
        uuid=event_uuid,
    )
    client.shutdown()
    (row,) = stored(db, "checkout")
    distinct_id, properties, session_id, device_id, app_version, os_name, os_version, timestamp, stored_uuid = row
    assert (distinct_id, session_id, device_id, app_version) == ("user-1", "sess-1", "dev-1", "3.1.0")
    assert os_name == platform.system() and os_version  # the SDK sets $os / $os_version itself
    assert str(stored_uuid) == event_uuid
    assert properties["amount"] == 12 and properties["$lib"] == "posthog-python"
    assert not {"$session_id", "$device_id", "$app_version", "$os", "$os_version"} & set(properties)
    assert abs(datetime.now(UTC) - timestamp) < timedelta(minutes=1)


def test_the_sdk_with_gzip_and_background_batching_delivers_every_event(server, api, db):
    client = Posthog(
        "phc_test", host=server.url, gzip=True, flush_at=5, flush_interval=0.2, max_retries=0, disable_geoip=True
    )
    for i in range(12):
        client.capture("tap", distinct_id=f"user-{i % 3}", properties={"i": i})
    client.flush()
    client.shutdown()
    rows = stored(db, "tap")
    assert sorted(r[1]["i"] for r in rows) == list(range(12))


def test_the_sdk_is_accepted_with_a_write_key_and_refused_with_a_wrong_one(server, api, db, write_key, caplog):
    good = sdk(server, key=write_key)
    good.capture("keyed", distinct_id="u")
    good.shutdown()
    bad = sdk(server, key="etw_not_a_key")
    with caplog.at_level(logging.ERROR, logger="posthog"):
        bad.capture("keyed", distinct_id="u")  # the SDK logs what the server answered
    bad.shutdown()
    assert "(401)" in caplog.text
    assert len(stored(db, "keyed")) == 1


# --- mobile SDK bodies, replayed byte for byte -----------------------------

IOS_BATCH = {
    "api_key": "phc_ios",
    "batch": [
        {
            "event": "$screen",
            "distinct_id": "01HZXK0DN7N9V5R7Q8Y2W3E4R5",
            "properties": {
                "$screen_name": "Home",
                "$lib": "posthog-ios",
                "$lib_version": "3.19.0",
                "$app_version": "2.4.1",
                "$app_build": "241",
                "$app_name": "Demo",
                "$app_namespace": "com.example.demo",
                "$os": "iOS",
                "$os_version": "17.5.1",
                "$device_manufacturer": "Apple",
                "$device_model": "iPhone15,3",
                "$device_type": "Mobile",
                "$device_id": "3E1F5C0A-8B1D-4C5E-9F2A-7D6B5C4A3B2C",
                "$session_id": "01900f7e-3b6c-7d2e-9a1b-5c4d3e2f1a0b",
                "$screen_width": 430,
                "$screen_height": 932,
                "$locale": "en-US",
                "$timezone": "Europe/Paris",
                "$network_wifi": True,
                "$is_emulator": False,
            },
            "timestamp": "2026-11-25T09:59:58.120Z",
            "uuid": "01900f7e-3b6c-7d2e-9a1b-000000000001",
        },
        {
            "event": "$identify",
            "distinct_id": "user@example.com",
            "properties": {
                "$anon_distinct_id": "01HZXK0DN7N9V5R7Q8Y2W3E4R5",
                "$lib": "posthog-ios",
                "$os": "iOS",
                "$os_version": "17.5.1",
                "$session_id": "01900f7e-3b6c-7d2e-9a1b-5c4d3e2f1a0b",
                "$set": {"email": "user@example.com", "plan": "pro"},
            },
            "timestamp": "2026-11-25T09:59:59.500Z",
            "uuid": "01900f7e-3b6c-7d2e-9a1b-000000000002",
        },
    ],
    "sent_at": "2026-11-25T10:00:00.000Z",
}

ANDROID_BATCH = {
    "api_key": "phc_android",
    "batch": [
        {
            "event": "$app_opened",
            "distinct_id": "0b7e2f3a-aaaa-4bbb-8ccc-1d2e3f4a5b6c",
            "properties": {
                "$lib": "posthog-android",
                "$lib_version": "3.8.0",
                "$app_version": "5.0.2",
                "$app_build": 502,
                "$app_namespace": "com.example.shop",
                "$os": "Android",
                "$os_version": "14",
                "$device_manufacturer": "Google",
                "$device_model": "Pixel 8",
                "$device_type": "Mobile",
                "$session_id": "01900f80-1111-7222-8333-444455556666",
                "from_background": False,
                "$set_once": {"first_app_version": "5.0.2"},
            },
            "timestamp": "2026-11-25T10:00:03.004Z",
            "uuid": "01900f80-1111-7222-8333-000000000001",
        }
    ],
    "sent_at": "2026-11-25T10:00:05.000Z",
}


def replay(api, path, payload, received_clock_offset=None):
    body = gzip.compress(orjson.dumps(payload))
    return api.post(path, content=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})


def test_ios_gzip_batch_is_stored_with_skew_corrected_times(api, db):
    response = replay(api, "/batch/", IOS_BATCH)
    assert response.status_code == 200 and response.json() == OK
    screen = db.execute(
        "SELECT distinct_id, os_name, os_version, app_version, device_id, session_id, properties, timestamp, sent_at, client_timestamp"
        " FROM events WHERE uuid = '01900f7e-3b6c-7d2e-9a1b-000000000001'"
    ).fetchone()
    assert screen[:6] == (
        "01HZXK0DN7N9V5R7Q8Y2W3E4R5",
        "iOS",
        "17.5.1",
        "2.4.1",
        "3E1F5C0A-8B1D-4C5E-9F2A-7D6B5C4A3B2C",
        "01900f7e-3b6c-7d2e-9a1b-5c4d3e2f1a0b",
    )
    assert screen[6]["$screen_name"] == "Home" and screen[6]["$app_build"] == "241"
    # The phone's clock is long past: the event is placed 1.88 s before our receive time.
    received = db.execute(
        "SELECT received_at FROM events WHERE uuid = '01900f7e-3b6c-7d2e-9a1b-000000000001'"
    ).fetchone()[0]
    assert screen[7] == received - timedelta(seconds=1.88)
    assert screen[8] == datetime(2026, 11, 25, 10, tzinfo=UTC)
    assert screen[9] == datetime(2026, 11, 25, 9, 59, 58, 120000, tzinfo=UTC)


def test_android_gzip_batch_on_every_capture_path_is_deduplicated_by_uuid(api, db):
    for path in ("/batch/", "/batch", "/e/", "/e", "/capture/", "/capture", "/i/v0/e/", "/i/v0/e", "/track/", "/track"):
        response = replay(api, path, ANDROID_BATCH)
        assert response.status_code == 200 and response.json() == OK, (path, response.text)
    rows = db.execute("SELECT os_name, os_version, app_version, session_id, properties FROM events").fetchall()
    assert len(rows) == 1
    os_name, os_version, app_version, session_id, properties = rows[0]
    assert (os_name, os_version, app_version, session_id) == (
        "Android",
        "14",
        "5.0.2",
        "01900f80-1111-7222-8333-444455556666",
    )
    assert properties["$app_build"] == 502 and properties["$set_once"] == {"first_app_version": "5.0.2"}


# --- other body shapes -----------------------------------------------------


def test_array_single_event_base64_and_legacy_form_bodies_are_accepted(api, db):
    event = {"event": "shape", "distinct_id": "u", "properties": {"n": 0}}
    assert api.post("/e/", json=[{**event, "properties": {"n": 1}}]).json() == OK
    assert api.post("/e/", json={**event, "properties": {"n": 2}}).json() == OK
    b64 = base64.b64encode(orjson.dumps({**event, "properties": {"n": 3}}))
    assert api.post("/e/?compression=base64", content=b64, headers={"content-type": "text/plain"}).json() == OK
    form = "data=" + quote(base64.b64encode(gzip.compress(orjson.dumps([{**event, "properties": {"n": 4}}]))).decode())
    response = api.post(
        "/e/?compression=gzip-js", content=form, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.json() == OK, response.text
    gz_no_header = gzip.compress(orjson.dumps({**event, "properties": {"n": 5}}))
    assert api.post("/i/v0/e/", content=gz_no_header, headers={"content-type": "text/plain"}).json() == OK
    assert sorted(r[1]["n"] for r in stored(db, "shape")) == [1, 2, 3, 4, 5]


def test_offset_places_the_event_that_many_milliseconds_before_arrival(api, db):
    assert (
        api.post(
            "/batch/",
            json={
                "batch": [{"event": "off", "distinct_id": "u", "offset": 60_000, "timestamp": "2001-01-01T00:00:00Z"}]
            },
        ).json()
        == OK
    )
    timestamp, received = db.execute("SELECT timestamp, received_at FROM events WHERE event_type = 'off'").fetchone()
    assert timestamp == received - timedelta(seconds=60)


def test_invalid_events_in_a_batch_are_dead_lettered_and_the_others_stored(api, db):
    response = api.post(
        "/batch/", json={"batch": [{"event": "ok", "distinct_id": "u"}, {"event": "no id"}, {"distinct_id": "u"}]}
    )
    assert response.status_code == 200 and response.json() == OK
    assert len(stored(db, "ok")) == 1
    rejected = db.execute("SELECT endpoint, reason, event_index FROM rejected_events ORDER BY event_index").fetchall()
    assert rejected == [("posthog", "validation_error", 1), ("posthog", "validation_error", 2)]


@pytest.mark.parametrize(
    "kwargs, status, code",
    [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "invalid_json"),
        ({"content": b"\x1f\x8b\x08garbage", "headers": {"content-type": "application/json"}}, 400, "invalid_gzip"),
        ({"json": {"event": "single", "distinct_id": ""}}, 400, "validation_error"),
        ({"json": {"batch": []}}, 400, "empty_batch"),
        ({"json": "text"}, 400, "invalid_batch"),
        ({"json": {"batch": [{"event": "e", "distinct_id": "u"}], "sent_at": "yesterday"}}, 400, "validation_error"),
    ],
)
def test_refused_bodies_get_native_error_codes_and_are_dead_lettered(api, db, kwargs, status, code):
    response = api.post("/batch/", **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    assert db.execute("SELECT endpoint, reason FROM rejected_events").fetchall() == [("posthog", code)]
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 0


def test_body_over_the_batch_limit_is_refused(api, db):
    response = api.post("/batch/", json={"batch": [{"event": "e", "distinct_id": "u"}] * 1001})
    assert response.status_code == 400 and response.json()["error"] == "batch_too_large"


def test_out_of_scope_posthog_endpoints_answer_404_json(api, db):
    for method, path in [
        ("POST", "/s/"),
        ("POST", "/i/v0/ai/batch/"),
        ("GET", "/api/surveys/"),
        ("GET", "/array/phc_x/config"),
        ("POST", "/engage/"),
    ]:
        response = api.request(method, path, json={})
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"
