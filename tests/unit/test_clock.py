from datetime import UTC, datetime, timedelta

import pytest

from eventtrack.clock import InvalidTimestamp, corrected_event_time, parse_timestamp

UTC = UTC
RECEIVED = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
MAX_FUTURE = timedelta(hours=23)


def test_timestamp_without_zone_is_utc():
    assert parse_timestamp("2026-11-25T10:00:00") == datetime(2026, 11, 25, 10, tzinfo=UTC)


def test_timestamp_with_offset_is_converted_to_utc():
    assert parse_timestamp("2026-11-25T10:00:00+02:00") == datetime(2026, 11, 25, 8, tzinfo=UTC)
    assert parse_timestamp("2026-11-25T10:00:00Z") == datetime(2026, 11, 25, 10, tzinfo=UTC)


@pytest.mark.parametrize("value", ["", "yesterday", "2026-13-01T00:00:00", 1732530000, None, ["2026-01-01"], "x" * 100])
def test_unreadable_timestamps_are_refused(value):
    with pytest.raises(InvalidTimestamp):
        parse_timestamp(value)


def test_year_one_with_positive_offset_is_out_of_range_not_a_crash():
    with pytest.raises(InvalidTimestamp):
        parse_timestamp("0001-01-01T00:00:00+01:00")


def test_phone_clock_ahead_is_corrected_by_sent_at():
    # The phone's clock is 1 hour ahead: it says the event happened 10 s before sending.
    ts = datetime(2026, 11, 25, 13, 0, 0, tzinfo=UTC)
    sent = datetime(2026, 11, 25, 13, 0, 10, tzinfo=UTC)
    result = corrected_event_time(ts, sent, RECEIVED, MAX_FUTURE)
    assert result.timestamp == RECEIVED - timedelta(seconds=10)
    assert not result.clamped


def test_without_sent_at_the_timestamp_is_kept():
    ts = datetime(2026, 11, 20, tzinfo=UTC)
    assert corrected_event_time(ts, None, RECEIVED, MAX_FUTURE).timestamp == ts


def test_without_timestamp_the_event_time_is_received_at():
    assert corrected_event_time(None, None, RECEIVED, MAX_FUTURE).timestamp == RECEIVED


def test_result_more_than_23_hours_ahead_is_clamped_to_received_at():
    ts = RECEIVED + timedelta(hours=23, seconds=1)
    result = corrected_event_time(ts, None, RECEIVED, MAX_FUTURE)
    assert result.timestamp == RECEIVED and result.clamped


def test_result_just_under_23_hours_ahead_is_kept():
    ts = RECEIVED + timedelta(hours=22, minutes=59)
    result = corrected_event_time(ts, None, RECEIVED, MAX_FUTURE)
    assert result.timestamp == ts and not result.clamped


def test_absurd_sent_at_in_the_past_clamps_instead_of_overflowing():
    ts = datetime(9999, 12, 31, tzinfo=UTC)
    sent = datetime(1, 1, 1, tzinfo=UTC)
    result = corrected_event_time(ts, sent, RECEIVED, MAX_FUTURE)
    assert result.timestamp == RECEIVED and result.clamped


def test_absurd_sent_at_in_the_future_makes_the_event_very_old():
    ts = datetime(1, 1, 2, tzinfo=UTC)
    sent = datetime(9999, 12, 31, tzinfo=UTC)
    result = corrected_event_time(ts, sent, RECEIVED, MAX_FUTURE)
    assert result.timestamp.year == 1
