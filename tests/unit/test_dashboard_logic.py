"""The dashboard's pure parts: session cookie, CSRF, flag form mapping, chart series, replay rules, Dagster answer."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from types import SimpleNamespace

import orjson
import pytest

from ingest_api.dashboard import charts
from ingest_api.dashboard.flag_form import errors_by_field, flag_to_form, form_to_body
from ingest_api.dashboard.overview import day_buckets, fill, hour_buckets, hour_label
from ingest_api.dashboard.pipeline_status import dagster_ui_url, parse_last_run
from ingest_api.dashboard.replay import REPLAY_NAMESPACE, is_replayable, revalidate
from ingest_api.dashboard.session import (
    Session,
    SessionCodec,
    cookie_header,
    csrf_ok,
    load_or_create_secret,
    new_session,
)
from ingest_api.flags.definition import FlagDefinitionError, parse_flag_definition
from ingest_api.validation import Limits

NOW = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)


def test_session_cookie_round_trips_and_refuses_tampering_other_secrets_and_age():
    codec = SessionCodec("secret-one", max_age_seconds=60)
    session = new_session(key_id=7, session_id="sid")
    token = codec.dumps(session)
    assert codec.loads(token) == session
    assert codec.loads(token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]) is None
    assert SessionCodec("secret-two", 60).loads(token) is None
    assert codec.loads(None) is None and codec.loads("") is None and codec.loads("x" * 5000) is None
    expired = SessionCodec("secret-one", max_age_seconds=0)
    time.sleep(1.1)
    assert expired.loads(token) is None


def test_csrf_token_must_match_the_session():
    session = Session(csrf="abc", key_id=1)
    assert csrf_ok(session, "abc")
    assert (
        not csrf_ok(session, "abd")
        and not csrf_ok(session, "")
        and not csrf_ok(session, None)
        and not csrf_ok(None, "abc")
    )


def test_cookie_is_httponly_lax_and_scoped_and_secure_only_when_asked():
    plain = cookie_header("v", max_age=10, secure=False)
    assert plain == "eventtrack_admin=v; Path=/admin/; Max-Age=10; HttpOnly; SameSite=Lax"
    assert cookie_header("v", max_age=10, secure=True).endswith("; Secure")


def test_secret_is_created_once_private_and_kept(tmp_path):
    first = load_or_create_secret(tmp_path / "data")
    assert len(first) >= 40
    assert load_or_create_secret(tmp_path / "data") == first
    assert (tmp_path / "data" / "dashboard_secret").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["dashboard_secret"]


def test_flag_form_becomes_the_api_body_and_back():
    body, errors = form_to_body(
        {"key": " beta ", "name": "", "description": "d", "active": "on", "rollout_percentage": "25.5",
         "variants": '[{"key": "a", "rollout_percentage": 100}]', "conditions": "", "payload": ""}
    )  # fmt: skip
    assert errors == {}
    assert body == {"key": "beta", "description": "d", "active": True, "rollout_percentage": 25.5,
                    "variants": [{"key": "a", "rollout_percentage": 100}], "conditions": [], "payload": None}  # fmt: skip
    stored = {**parse_flag_definition(body), "id": 1}
    form = flag_to_form(stored)
    assert (
        form["active"] == "on"
        and form["rollout_percentage"] == "25.5"
        and form["conditions"] == ""
        and form["payload"] == ""
    )
    assert parse_flag_definition(form_to_body(form)[0]) == parse_flag_definition(body)  # nothing lost on the way back


def test_flag_form_reports_unreadable_json_and_numbers_before_validation():
    body, errors = form_to_body({"key": "k", "rollout_percentage": "lots", "variants": "[{", "active": ""})
    assert set(errors) == {"rollout_percentage", "variants"}
    assert body["active"] is False


def test_api_error_paths_are_grouped_under_their_form_field():
    with pytest.raises(FlagDefinitionError) as err:
        parse_flag_definition(
            {
                "key": "Bad Key",
                "rollout_percentage": 5,
                "variants": [{"key": "a", "rollout_percentage": 120}],
                "bogus": 1,
            }
        )
    grouped = errors_by_field(err.value.fields)
    assert set(grouped) == {"key", "variants", "form"}
    assert any(m.startswith("variants[0].rollout_percentage") for m in grouped["variants"])
    assert grouped["form"] == ["bogus: unknown field"]


def test_chart_series_have_one_bucket_per_hour_and_day_filled_with_zeros():
    hours = hour_buckets(NOW, 48)
    assert (
        len(hours) == 48
        and hours[-1] == datetime(2026, 11, 25, 10, tzinfo=UTC)
        and hours[0] == hours[-1] - timedelta(hours=47)
    )
    days = day_buckets(NOW, 30)
    assert days[-1] == date(2026, 11, 25) and len(days) == 30
    series = fill(hours[-3:], {hours[-2]: 5}, hour_label)
    assert series.values == [0, 5, 0] and series.labels == ["25 08:00", "25 09:00", "25 10:00"]
    assert fill(days[-2:], {}, str, None).values == [None, None]


def test_charts_are_inline_svg_without_any_script_or_remote_resource():
    for svg in (
        charts.bar_chart(["a", "b"], [1, 2], title="t", series="s"),
        charts.line_chart(["a", "b"], {"x": [1, None]}, title="t"),
        charts.horizontal_bar_chart([("a", 3)], title="t", series="s"),
    ):
        assert svg.startswith("<svg") and "<script" not in svg and "kozea.github.io" not in svg
        assert "<?xml" not in svg


def test_only_single_untruncated_native_events_are_replayable():
    assert is_replayable("capture", None, False)
    assert is_replayable("batch", 3, False)
    assert not is_replayable("batch", None, False)  # a whole refused batch body
    assert not is_replayable("capture", None, True)
    assert not is_replayable("posthog/capture", 0, False)


LIMITS = Limits(
    max_event_bytes=64 * 1024,
    max_properties_depth=32,
    max_future=timedelta(hours=23),
    oldest_allowed=NOW - timedelta(days=90),
)


def _row(payload: bytes, id_: int = 42) -> SimpleNamespace:
    return SimpleNamespace(id=id_, payload=payload, received_at=NOW)


def test_revalidate_gives_an_event_without_uuid_one_derived_from_the_dead_letter():
    row = revalidate(_row(orjson.dumps({"event": "e", "distinct_id": "u"})), LIMITS)
    assert row.uuid == uuid.uuid5(REPLAY_NAMESPACE, "rejected_events/42")
    assert (
        revalidate(_row(orjson.dumps({"event": "e", "distinct_id": "u"})), LIMITS).uuid == row.uuid
    )  # same row: same uuid
    own = str(uuid.uuid4())
    assert str(revalidate(_row(orjson.dumps({"event": "e", "distinct_id": "u", "uuid": own})), LIMITS).uuid) == own


def test_revalidate_says_why_an_event_is_still_refused():
    assert revalidate(_row(b'{"event": "e"}'), LIMITS) == "validation_error"
    assert revalidate(_row(b"{not json"), LIMITS) == "invalid_json"
    assert revalidate(_row(b"[1]"), LIMITS) == "not_an_object"
    big = orjson.dumps({"event": "e", "distinct_id": "u", "properties": {"x": "y" * 300}})
    assert revalidate(_row(big), Limits(200, 32, timedelta(hours=23), NOW - timedelta(days=90))) == "event_too_large"


def test_dagster_answer_becomes_the_last_run():
    ui = dagster_ui_url("0.0.0.0", 3000)
    assert ui == "http://127.0.0.1:3000"
    body = {"data": {"runsOrError": {"__typename": "Runs", "results": [
        {"runId": "r1", "status": "SUCCESS", "jobName": "hourly_aggregates_job", "startTime": 1764064800.5, "endTime": None}]}}}  # fmt: skip
    status = parse_last_run(ui, body)
    assert (status.run_id, status.status, status.job) == ("r1", "SUCCESS", "hourly_aggregates_job")
    assert status.started_at == datetime.fromtimestamp(1764064800.5, UTC) and status.ended_at is None
    assert status.run_url == "http://127.0.0.1:3000/runs/r1"
    assert parse_last_run(ui, {"data": {"runsOrError": {"__typename": "Runs", "results": []}}}).problem == "no run yet"
    assert parse_last_run(ui, {"errors": ["x"]}).problem == "unexpected answer from Dagster"
    assert (
        parse_last_run(ui, {"data": {"runsOrError": {"__typename": "PythonError", "message": "boom"}}}).problem
        == "boom"
    )


def test_times_are_shown_in_utc_whatever_zone_the_database_answered_in():
    from ingest_api.dashboard.routes import utc_text

    assert utc_text("2026-11-25T13:28:20.5-03:30") == "2026-11-25 16:58:20"
    assert utc_text(datetime(2026, 11, 25, 23, 30, tzinfo=timezone(timedelta(hours=-2)))) == "2026-11-26 01:30:00"
    assert utc_text(None) == ""
