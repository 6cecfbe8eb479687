"""Project write keys: open until one exists, then required on every capture and flag endpoint."""

from __future__ import annotations

import argparse
import time

from eventtrack.settings import Settings
from eventtrack_cli.main import cmd_create_write_key, cmd_list_write_keys, cmd_revoke_write_key
from tests.conftest import wait_until

API = "/api/v1/analytics"
FLAGS = f"{API}/public/feature-flags"


def assert_invalid_key(response):
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "invalid_api_key"
    assert body["detail"]


def test_capture_is_open_while_no_write_key_exists(api, db):
    assert api.post(f"{API}/capture/", json={"distinct_id": "u", "event": "open"}).status_code == 200
    assert api.get(f"{FLAGS}/").status_code == 200


def test_every_native_endpoint_refuses_a_request_without_a_valid_key(api, db, write_key):
    event = {"distinct_id": "u", "event": "e"}
    assert_invalid_key(api.post(f"{API}/capture/", json=event))
    assert_invalid_key(api.post(f"{API}/capture/", json={**event, "api_key": "etw_wrong"}))
    assert_invalid_key(api.post(f"{API}/batch/", json={"events": [event]}))
    assert_invalid_key(api.post(f"{API}/session/start/", json={"distinct_id": "u"}))
    assert_invalid_key(api.put(f"{API}/session/0190f5d2-7d6b-7cc0-8a4e-2d4bbd3b9e01/end/"))
    assert_invalid_key(api.get(f"{FLAGS}/"))
    assert_invalid_key(api.get(f"{FLAGS}/1/"))
    assert_invalid_key(api.get(f"{FLAGS}/for_user/", params={"distinct_id": "u"}))
    assert_invalid_key(api.post(f"{FLAGS}/for_user/", json={"distinct_id": "u"}))
    # Nothing refused for a missing key is written anywhere.
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM rejected_events").fetchone()[0] == 0


def test_a_valid_key_is_accepted_in_the_body_the_header_or_the_query(api, db, write_key):
    event = {"distinct_id": "u", "event": "e"}
    assert api.post(f"{API}/capture/", json={**event, "api_key": write_key}).status_code == 200
    assert api.post(f"{API}/capture/", json={**event, "token": write_key}).status_code == 200
    assert api.post(f"{API}/capture/", json=event, headers={"X-API-Key": write_key}).status_code == 200
    assert api.post(f"{API}/batch/", json={"api_key": write_key, "events": [event]}).status_code == 200
    assert api.post(f"{API}/session/start/", json={"distinct_id": "u", "token": write_key}).status_code == 201
    assert api.get(f"{FLAGS}/", params={"api_key": write_key}).status_code == 200
    assert api.get(f"{FLAGS}/for_user/", params={"distinct_id": "u", "api_key": write_key}).status_code == 200
    assert api.post(f"{FLAGS}/for_user/", json={"distinct_id": "u", "api_key": write_key}).status_code == 200
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 4


def test_cli_creates_lists_and_revokes_and_revocation_takes_effect_within_a_second(api, db, database_url, capsys):
    settings = Settings(database_url=database_url)
    assert cmd_create_write_key(settings, argparse.Namespace(name="ios app")) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert key.startswith("etw_")
    wait_until(lambda: api.get(f"{FLAGS}/").status_code == 401)
    assert api.post(f"{API}/capture/", json={"distinct_id": "u", "event": "e", "api_key": key}).status_code == 200

    assert cmd_list_write_keys(settings, argparse.Namespace()) == 0
    listing = capsys.readouterr().out
    assert "ios app" in listing and key in listing and "active" in listing
    key_id = int(listing.split("\t", 1)[0])

    assert cmd_create_write_key(settings, argparse.Namespace(name="android app")) == 0
    other_key = capsys.readouterr().out.strip().splitlines()[-1]

    assert cmd_revoke_write_key(settings, argparse.Namespace(id=key_id)) == 0
    revoked = time.monotonic()
    wait_until(
        lambda: api.post(f"{API}/capture/", json={"distinct_id": "u", "event": "e", "api_key": key}).status_code == 401,
        timeout=1.5,
    )
    assert time.monotonic() - revoked < 1.5
    assert cmd_revoke_write_key(settings, argparse.Namespace(id=key_id)) == 1
    assert api.post(f"{API}/capture/", json={"distinct_id": "u", "event": "e", "api_key": other_key}).status_code == 200
    # The last key revoked: capture is open again.
    assert cmd_revoke_write_key(settings, argparse.Namespace(id=key_id + 1)) == 0
    wait_until(lambda: api.post(f"{API}/capture/", json={"distinct_id": "u", "event": "e"}).status_code == 200)
