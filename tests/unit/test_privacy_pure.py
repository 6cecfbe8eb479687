"""Pure privacy helpers: client-IP truncation and matching dead letters to a person."""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from urllib.parse import quote

import orjson
import pytest

from eventtrack.client_ip import parse_truncation, stored_client_ip
from eventtrack.settings import Settings
from ingest_api.privacy.dead_letters import payload_mentions, sql_needles

# --- client IP ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "host, prefixes, expected",
    [
        ("203.0.113.77", (24, 48), "203.0.113.0"),
        ("203.0.113.77", (16, 48), "203.0.0.0"),
        ("203.0.113.77", (32, 128), "203.0.113.77"),
        ("2001:db8:abcd:12:34:56:78:9a", (24, 48), "2001:db8:abcd::"),
        ("2001:db8:abcd:12:34:56:78:9a", (24, 64), "2001:db8:abcd:12::"),
        ("::ffff:198.51.100.9", (24, 48), "198.51.100.0"),  # IPv4 mapped into IPv6 is cut as IPv4
        ("fe80::1%eth0", (24, 16), "fe80::"),
        ("testclient", (24, 48), None),
        ("", (24, 48), None),
        (None, (24, 48), None),
    ],
)
def test_stored_client_ip_is_truncated_to_the_prefix(host, prefixes, expected):
    assert stored_client_ip(host, store=True, prefixes=prefixes) == expected


def test_client_ip_is_not_stored_unless_asked():
    assert stored_client_ip("203.0.113.77", store=False, prefixes=(32, 128)) is None


@pytest.mark.parametrize(
    "text, expected", [("24,48", (24, 48)), (" /16, /32 ", (16, 32)), ("none", (32, 128)), ("0,0", (0, 0))]
)
def test_truncation_setting_parses(text, expected):
    assert parse_truncation(text) == expected


@pytest.mark.parametrize("text", ["24", "33,48", "24,129", "a,b", "-1,48"])
def test_truncation_setting_refuses_nonsense(text):
    with pytest.raises(ValueError, match="CLIENT_IP_TRUNCATION"):
        parse_truncation(text)


def test_settings_read_the_ip_variables():
    assert Settings.from_env({}).store_client_ip is False
    assert Settings.from_env({}).client_ip_prefixes == (24, 48)
    settings = Settings.from_env({"STORE_CLIENT_IP": "true", "CLIENT_IP_TRUNCATION": "16,32"})
    assert settings.store_client_ip is True and settings.client_ip_prefixes == (16, 32)
    with pytest.raises(ValueError, match="STORE_CLIENT_IP"):
        Settings.from_env({"STORE_CLIENT_IP": "maybe"})


# --- dead letters -------------------------------------------------------------------

EVENT = {"event": "purchase", "distinct_id": "alice", "properties": {"amount": "x"}}


def test_json_payload_matches_on_id_fields_at_any_depth():
    assert payload_mentions(orjson.dumps(EVENT), ["alice"])
    assert payload_mentions(orjson.dumps({"batch": [{"x": 1}, EVENT]}), ["alice"])
    assert payload_mentions(
        orjson.dumps({"event": "$identify", "distinct_id": "bob", "properties": {"$anon_distinct_id": "alice"}}),
        ["alice"],
    )
    assert payload_mentions(orjson.dumps({"properties": {"$distinct_id": "alice"}}), ["alice"])
    assert payload_mentions(orjson.dumps({"distinct_id": 42, "event": "e"}), ["42"])  # numbers become ids


def test_json_payload_does_not_match_other_users_or_other_fields():
    assert not payload_mentions(orjson.dumps(EVENT), ["alic"])
    assert not payload_mentions(orjson.dumps({**EVENT, "distinct_id": "alice2"}), ["alice"])
    assert not payload_mentions(orjson.dumps({"distinct_id": "bob", "properties": {"friend": "alice"}}), ["alice"])
    assert not payload_mentions(orjson.dumps({"distinct_id": True}), ["True", "true"])
    assert not payload_mentions(orjson.dumps(EVENT), [])


def test_encoded_payloads_are_decoded():
    raw = orjson.dumps({"batch": [EVENT]})
    assert payload_mentions(gzip.compress(raw), ["alice"])
    assert payload_mentions(base64.b64encode(raw), ["alice"])
    assert payload_mentions(b"data=" + quote(base64.b64encode(gzip.compress(raw))).encode(), ["alice"])
    assert payload_mentions(b"data=" + quote(raw.decode()).encode(), ["alice"])
    assert not payload_mentions(gzip.compress(orjson.dumps({**EVENT, "distinct_id": "bob"})), ["alice"])


def test_cut_off_or_broken_payloads_match_the_quoted_id():
    cut = orjson.dumps({"batch": [EVENT] * 3})[:70]
    assert payload_mentions(cut, ["alice"])
    assert payload_mentions(b'{"distinct_id": "alice", "event": ', ["alice"])
    assert payload_mentions(b'{"distinct_id": 42, "event": ', ["42"])
    assert not payload_mentions(b'{"distinct_id": 421, "event": ', ["42"])
    assert not payload_mentions(b'{"distinct_id": "alice2", ', ["alice"])
    packed = gzip.compress(orjson.dumps({"batch": [{**EVENT, "uuid": str(uuid.uuid4())} for _ in range(200)]}))
    assert payload_mentions(packed[: len(packed) // 2], ["alice"])  # a cut gzip stream: its start is read


def test_non_ascii_ids_match_raw_and_escaped():
    assert payload_mentions('{"distinct_id": "zoë", '.encode(), ["zoë"])
    assert payload_mentions(json.dumps({"distinct_id": "zoë"}).encode()[:-1], ["zoë"])  # \\u00eb, cut off
    assert payload_mentions(json.dumps({"distinct_id": "zoë"}).encode(), ["zoë"])


def test_sql_needles_cover_the_raw_and_escaped_forms():
    assert sql_needles(["zoë"]) == sorted({"zoë".encode(), b"zo\\u00eb"})
    assert sql_needles(["alice"]) == [b"alice"]


def test_garbage_payloads_never_raise():
    for payload in (b"", b"\x00\xff\xfe", b"\x1f\x8b\x00\x00", b"data=%ZZ", b"data=\xff", b"[" * 10_000, b'"alice"'):
        payload_mentions(payload, ["alice"])
