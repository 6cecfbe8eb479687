import math
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from eventtrack.errors import EventInvalid
from ingest_api.validation import CLAMPED_WARNING, Limits, check_json_tree, client_time, normalize_event

UTC = UTC
RECEIVED = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LIMITS = Limits(
    max_event_bytes=64 * 1024,
    max_properties_depth=32,
    max_future=timedelta(hours=23),
    oldest_allowed=datetime(2026, 8, 27, tzinfo=UTC),
)


def normalize(event, sanitize=False, sent_at=None):
    return normalize_event(event, received_at=RECEIVED, batch_sent_at=sent_at, limits=LIMITS, sanitize=sanitize)


def refusal(event, sanitize=False) -> EventInvalid:
    with pytest.raises(EventInvalid) as info:
        normalize(event, sanitize)
    return info.value


def test_minimal_event_gets_uuid7_and_received_at():
    row = normalize({"distinct_id": "u", "event_type": "app_open"})
    assert row.uuid.version == 7
    assert row.timestamp == RECEIVED and row.client_timestamp is None
    assert orjson.loads(row.properties_json) == {}


def test_numeric_distinct_id_becomes_a_string():
    assert normalize({"distinct_id": 42, "event": "x"}).distinct_id == "42"


def test_event_is_an_alias_of_event_type():
    assert normalize({"distinct_id": "u", "event": "purchase"}).event_type == "purchase"


def test_client_uuid_is_kept():
    given = uuid.uuid4()
    assert normalize({"distinct_id": "u", "event": "x", "uuid": str(given)}).uuid == given


@pytest.mark.parametrize(
    "event, field",
    [
        ({"event": "x"}, "distinct_id"),
        ({"distinct_id": "", "event": "x"}, "distinct_id"),
        ({"distinct_id": "u" * 201, "event": "x"}, "distinct_id"),
        ({"distinct_id": True, "event": "x"}, "distinct_id"),
        ({"distinct_id": {"id": 1}, "event": "x"}, "distinct_id"),
        ({"distinct_id": "u"}, "event_type"),
        ({"distinct_id": "u", "event_type": 5}, "event_type"),
        ({"distinct_id": "u", "event": "x", "device_id": 123}, "device_id"),
        ({"distinct_id": "u", "event": "x", "session_id": ["a"]}, "session_id"),
        ({"distinct_id": "u", "event": "x", "app_version": "v" * 201}, "app_version"),
        ({"distinct_id": "u", "event": "x", "properties": [1, 2]}, "properties"),
        ({"distinct_id": "u", "event": "x", "uuid": "not-a-uuid"}, "uuid"),
        ({"distinct_id": "u", "event": "x", "uuid": 12}, "uuid"),
        ({"distinct_id": "u", "event": "x", "timestamp": "soon"}, "timestamp"),
        ({"distinct_id": "u", "event": "x", "sent_at": 17}, "sent_at"),
    ],
)
def test_invalid_fields_are_named(event, field):
    err = refusal(event)
    assert err.code == "validation_error"
    assert field in err.fields


def test_not_an_object_is_refused():
    assert refusal(["x"]).code == "invalid_event"


def test_nul_characters_are_stripped_everywhere_when_sanitizing():
    row = normalize(
        {"distinct_id": "u\x00v", "event": "e\x00", "properties": {"k\x00": ["a\x00b", {"x": "\x00"}]}}, sanitize=True
    )
    assert row.distinct_id == "uv" and row.event_type == "e"
    assert orjson.loads(row.properties_json) == {"k": ["ab", {"x": ""}]}


def test_lone_surrogates_become_replacement_characters():
    row = normalize({"distinct_id": "u", "event": "x", "properties": {"s": "a\ud800b"}}, sanitize=True)
    assert orjson.loads(row.properties_json) == {"s": "a\ufffdb"}


def nested(levels: int) -> dict:
    """Properties holding `levels` objects, one inside the other."""
    deep: dict = {}
    node = deep
    for _ in range(levels):
        node["n"] = {}
        node = node["n"]
    return deep


def test_properties_deeper_than_the_limit_are_refused():
    err = refusal({"distinct_id": "u", "event": "x", "properties": nested(40)})
    assert err.code == "too_deep" and "properties" in err.fields


def test_properties_at_the_depth_limit_are_accepted():
    normalize({"distinct_id": "u", "event": "x", "properties": nested(31)})


@pytest.mark.parametrize("number", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_numbers_are_refused(number):
    err = refusal({"distinct_id": "u", "event": "x", "properties": {"v": [1, number]}}, sanitize=True)
    assert err.code == "invalid_number"


def test_event_over_the_size_limit_is_refused():
    err = refusal({"distinct_id": "u", "event": "x", "properties": {"blob": "a" * 70_000}})
    assert err.code == "event_too_large"


def test_event_older_than_retention_is_too_old():
    err = refusal({"distinct_id": "u", "event": "x", "timestamp": "2026-08-26T23:59:59Z"})
    assert err.code == "too_old"


def test_the_client_time_window_names_the_field_it_refuses():
    with pytest.raises(EventInvalid) as info:
        client_time(datetime(1, 1, 1, tzinfo=UTC), None, RECEIVED, LIMITS, "started_at")
    assert (info.value.code, info.value.fields) == ("too_old", {"started_at": "older than the retention window"})
    ahead = client_time(datetime(9999, 12, 31, tzinfo=UTC), None, RECEIVED, LIMITS, "ended_at")
    assert ahead.timestamp == RECEIVED and ahead.clamped
    assert client_time(LIMITS.oldest_allowed, None, RECEIVED, LIMITS, "started_at").timestamp == LIMITS.oldest_allowed


def test_clamped_timestamp_is_recorded_as_a_warning_property():
    row = normalize({"distinct_id": "u", "event": "x", "timestamp": "2026-11-27T12:00:00Z"})
    assert row.timestamp == RECEIVED
    assert row.warnings == (CLAMPED_WARNING,)
    assert orjson.loads(row.properties_json)["$ingestion_warnings"] == [CLAMPED_WARNING]


def test_batch_sent_at_applies_when_the_event_has_none():
    sent = datetime(2026, 11, 25, 12, 0, 30, tzinfo=UTC)  # phone 30 s ahead
    row = normalize({"distinct_id": "u", "event": "x", "timestamp": "2026-11-25T12:00:20Z"}, sent_at=sent)
    assert row.timestamp == datetime(2026, 11, 25, 11, 59, 50, tzinfo=UTC)


@pytest.mark.parametrize(
    "tree",
    [
        {"a": [1, {"b": [[{"c": 1}]]}]},
        {"a": [1.5, {"b": math.nan}]},
        {"a": [{"b": [math.inf]}], "deep": [[[[1]]]]},
        {"a": {"b": {"c": {"d": "x"}}}},
        {"a": [[[["x"]]]]},
    ],
)
def test_the_sanitizing_walk_finds_what_the_check_only_walk_finds(tree):
    # The two walks of a properties tree (tolerant parser or not) must refuse the same trees with the same words.
    checked = check_json_tree(tree, 3, sanitize=False)
    sanitized = check_json_tree(tree, 3, sanitize=True)
    assert sanitized == checked if isinstance(checked, str) else sanitized == tree
