"""Retention cohorts, event aggregates and event counts on ClickHouse give the Postgres answers (docs/analytics.md).

The Postgres answers of the first two are the dbt marts, so dbt builds them over the events; the same
requests go to a server without and a server with CLICKHOUSE_URL, and the answers are compared whole, page
by page. ClickHouse holds the planted events and the pipeline has run; then late events, resends and an erasure arrive that it has
not loaded yet, and its oldest day passes the retention cutoff (Postgres drops it, ClickHouse not yet): the
answers must be equal, and again once the loader has caught up.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from unittest import mock

import httpx
import psycopg
import pytest

from eventtrack import clickhouse as ch
from eventtrack.partitions import retention_cutoff
from tests.conftest import RunningServer, settings_for
from tests.integration.test_clickhouse_queries import END, START, planted_events
from tests.integration.test_pipeline import ANALYTICS_SCHEMAS

ADMIN = "/api/v1/analytics/admin"
# The oldest planted day (START - 1 day) is outside a 14-day retention window, the others inside.
RETENTION_DAYS = 14
SETTLE = timedelta(minutes=5)
MARTS = "stg_eventtrack__events agg_retention_weekly agg_retention_daily agg_events_hourly agg_events_daily"


def build_marts(select: str = MARTS, **extra_vars) -> None:
    """dbt rebuilds the retention marts and every aggregate bucket of the planted range, as the pipeline would."""
    from eventtrack.settings import Settings
    from orchestration.resources import DBT_COMMAND, DBT_PROJECT_DIR, settings_dbt_vars, venv_executable

    window = {"min_ts": (START - timedelta(days=3)).isoformat(), "max_ts": (END + timedelta(days=8)).isoformat()}
    project = ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    command = [venv_executable(DBT_COMMAND), "run", "--select", select, *project, "--vars"]
    done = subprocess.run(
        [*command, json.dumps({**settings_dbt_vars(Settings()), **window, **extra_vars})],
        cwd=DBT_PROJECT_DIR,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout


def with_devices(rows: list[tuple], seed: int = 11) -> list[tuple]:
    """The planted events with devices (none, '', one or two per user), explicit sessions now and then, and
    app versions, so that users, devices and derived sessions differ."""
    rng = random.Random(seed)
    devices = {}
    planted = []
    for user, event_type, at, props in rows:
        devices.setdefault(user, rng.choice([[None], [""], [f"{user}-a"], [f"{user}-a", f"{user}-b", None]]))
        session = f"s-{rng.randrange(20)}" if rng.random() < 0.1 else None
        planted.append((user, event_type, at, props, rng.choice(devices[user]), session, rng.choice(["1.0", None])))
    # Sessions at the edge: a gap of exactly the timeout continues one, a microsecond more starts the next;
    # no device and an empty one are the same device.
    t = START + timedelta(days=3, hours=10)
    for offset, device in [(0, None), (30 * 60, ""), (60 * 60 + 1e-6, None), (90 * 60 + 2e-6, "")]:
        planted.append(("edge-gaps", "view", t + timedelta(seconds=offset), {}, device, None, "1.0"))
    return planted


@pytest.fixture(scope="module")
def planted(database_url, chdb_url, dbt_env):
    """Postgres and ClickHouse holding the same events, no marts yet; the marts dropped after, and the
    partitions dropped as past retention made again."""
    target = ch.Target.parse(chdb_url)
    client = ch.connect(target)
    client.command(f"DROP DATABASE IF EXISTS {target.database} SYNC")
    client = ch.connect(target)
    with psycopg.connect(database_url, autocommit=True) as pg:
        days = pg.execute(
            "SELECT min(to_date(substr(c.relname, 9), 'YYYYMMDD')), max(to_date(substr(c.relname, 9), 'YYYYMMDD'))"
            " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass"
            " AND c.relname ~ '^events_p[0-9]{8}$'"
        ).fetchone()
        for schema in ANALYTICS_SCHEMAS:
            pg.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        pg.execute("TRUNCATE events, clickhouse_erasures, aggregate_rebuilds")
        with pg.cursor() as cur:
            cur.executemany(
                """INSERT INTO events (uuid, event_type, distinct_id, properties, os_name, device_id, session_id,
                                       app_version, "timestamp", received_at)
                   VALUES (gen_random_uuid(), %s, %s, %s, %s, %s, %s, %s, %s, now() - interval '1 hour')""",
                [
                    (
                        event_type,
                        user,
                        props if isinstance(props, str) else json.dumps(props),
                        ("iOS", "Android")[len(user) % 2],
                        device,
                        session,
                        version,
                        at,
                    )
                    for user, event_type, at, props, device, session, version in with_devices(planted_events())
                ],
            )
        ch.load_arrivals(pg, client, target, SETTLE)
        yield pg, client, target
        for schema in ANALYTICS_SCHEMAS:
            pg.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        # The days the tests dropped as past retention, made again: the other tests' events go there, and the
        # partition maintenance test counts what it creates.
        pg.execute("SELECT ensure_event_partitions(%s, %s)", days)


@pytest.fixture(scope="module")
def admin_headers(database_url) -> dict[str, str]:
    from ingest_api.admin.key_store import create_admin_key

    _, key = create_admin_key(database_url, "clickhouse-marts")
    return {"Authorization": f"Bearer {key}"}


def servers(stack: ExitStack, database_url: str, chdb_url: str, retention_days: int) -> tuple[str, str]:
    """The URLs of a server on Postgres alone and one with ClickHouse, with the same settings otherwise."""
    settings = {"events_retention_days": retention_days}
    on_postgres = stack.enter_context(RunningServer(settings_for(database_url, **settings)))
    on_clickhouse = stack.enter_context(RunningServer(settings_for(database_url, clickhouse_url=chdb_url, **settings)))
    return on_postgres.url, on_clickhouse.url


def pages(base: str, path: str, params: dict, headers: dict) -> list[dict]:
    """Every page of a listing (next links followed), then the first page again by the second's previous link;
    links without their host (the two servers' ports differ)."""
    answers = []
    url, query = base + path, params
    while url:
        response = httpx.get(url, params=query, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        answers.append(body)
        url, query = body.get("next"), None
    if len(answers) > 1:
        back = httpx.get(answers[1]["previous"], headers=headers, timeout=30).json()
        assert back["results"] == answers[0]["results"]
    for body in answers:
        for link in ("next", "previous"):
            if body.get(link):
                body[link] = re.sub(r"^http://[^/]+", "", body[link])
    return answers


RETENTION = [
    {"period": "week"},
    {"period": "day"},
    {"period": "day", "start": (START + timedelta(days=2)).isoformat(), "end": (START + timedelta(days=5)).isoformat()},
]
AGGREGATES = [
    {"granularity": "hour", "limit": "600"},
    {"granularity": "day"},
    {
        "granularity": "hour",
        "event_type": "view",
        "os_name": "iOS",
        "start": (START + timedelta(hours=30)).isoformat(),
        "limit": "1000",
    },
    {"granularity": "day", "app_version": "1.0", "end": (END - timedelta(hours=3)).isoformat()},
    {"granularity": "hour", "filter": ["properties.price>1.5"], "limit": "400"},
    {"granularity": "day", "breakdown": "properties.plan", "limit": "20"},
    {"granularity": "hour", "breakdown": "properties.note", "start": START.isoformat(), "limit": "1000"},
    {
        "granularity": "hour",
        "breakdown": "os_name",
        "filter": ["properties.plan!=pro"],
        "end": END.isoformat(),
        "limit": "1000",
    },
]
COUNTS = [
    {},
    {"event_type": "open"},
    {"breakdown": "properties.plan"},
    {"filter": ["properties.price>=-3.25"], "breakdown": "app_version"},
]


def answers(base: str, headers: dict, counts_only: bool = False) -> dict:
    """Every compared request's answer from one server (or only the event counts')."""
    found = {}
    for i, query in enumerate([] if counts_only else RETENTION):
        response = httpx.get(f"{base}{ADMIN}/retention/", params=query, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        found[f"retention {i}"] = response.json()
    for i, query in enumerate([] if counts_only else AGGREGATES):
        found[f"aggregates {i}"] = pages(base, f"{ADMIN}/event-aggregates/", query, headers)
    for i, query in enumerate(COUNTS):
        # From before the oldest planted day to after the newest: ranges across the retention cutoff.
        params = {"start": (START - timedelta(days=2)).isoformat(), "end": (END + timedelta(days=4)).isoformat()}
        response = httpx.get(f"{base}{ADMIN}/events/event_counts/", params={**params, **query}, headers=headers)
        assert response.status_code == 200, response.text
        found[f"counts {i}"] = response.json()
    return found


def assert_same(on_postgres: dict, on_clickhouse: dict) -> None:
    assert on_postgres.keys() == on_clickhouse.keys()
    for name, expected in on_postgres.items():
        assert on_clickhouse[name] == expected, name


def test_clickhouse_retention_aggregates_counts_and_overview_are_postgres_answers_through_late_events_erasure_and_retention(
    planted, database_url, chdb_url, admin_headers
):
    from orchestration.maintenance import drop_expired_event_partitions

    pg, client, target = planted
    victim = "user-3"
    late = [
        {
            "uuid": str(uuid.uuid4()),
            "distinct_id": user,
            "event_type": event_type,
            "device_id": device,
            "timestamp": (START + offset).isoformat(),
            # Written into the ClickHouse query as text until loaded: quotes, a backslash, braces, not ASCII.
            "properties": {"plan": "pro", "price": 2, "note": 'it\'s \\ "{x:String}" %s é'},
        }
        for user, event_type, device, offset in [
            ("user-5", "buy", "user-5-a", timedelta(days=1, minutes=7)),  # late: into old buckets and cohorts
            ("late-new", "open", None, timedelta(days=6, hours=2)),  # a new user, late
            ("late-new", "view", None, timedelta(days=6, hours=2, minutes=45)),  # a second derived session
            (victim, "open", None, timedelta(days=2)),  # erased with the rest of the person
        ]
    ]
    build_marts()  # the pipeline has run over the planted events
    with ExitStack() as stack:
        on_postgres, on_clickhouse = servers(stack, database_url, chdb_url, RETENTION_DAYS)
        for _ in range(2):  # sent twice: the resend is dropped by capture
            response = httpx.post(on_postgres + "/api/v1/analytics/batch/", json={"events": late}, timeout=30)
            assert response.status_code == 200 and response.json()["accepted"] == len(late), response.text
        erased = httpx.delete(f"{on_clickhouse}{ADMIN}/persons/{victim}/", headers=admin_headers, timeout=30)
        assert erased.status_code == 200 and erased.json()["deleted"]["events"] > 1, erased.text
        # The person comes back before the next load: what they send now is Postgres's to keep.
        back = {**late[-1], "uuid": str(uuid.uuid4()), "timestamp": (START + timedelta(days=3)).isoformat()}
        response = httpx.post(on_postgres + "/api/v1/analytics/batch/", json={"events": [back]}, timeout=30)
        assert response.status_code == 200 and response.json()["accepted"] == 1, response.text
        # Counts are exact without the pipeline, also while Postgres still keeps a day past the cutoff.
        cutoff = retention_cutoff(datetime.now(UTC), RETENTION_DAYS)
        (kept,) = pg.execute('SELECT count(*) FROM events WHERE "timestamp" < %s', (cutoff,)).fetchone()
        assert kept > 0
        expected = answers(on_postgres, admin_headers, counts_only=True)
        assert_same(expected, answers(on_clickhouse, admin_headers, counts_only=True))

        # The day past the cutoff dropped in Postgres (its aggregates stay: they outlive raw events), the marts
        # rebuilt: ClickHouse has loaded none of it.
        assert drop_expired_event_partitions(pg, datetime.now(UTC), RETENTION_DAYS)
        build_marts()
        status = ch.status(pg, client, target)
        assert status["newest_ingest_seq"] > status["loaded_up_to_ingest_seq"] and status["pending_erasures"] == 1
        expected = answers(on_postgres, admin_headers)
        assert_same(expected, answers(on_clickhouse, admin_headers))
        # The planted data reach every query (no equality of empty answers), over several pages.
        assert all(len(expected[f"retention {i}"]["cohorts"]) > 1 for i in range(len(RETENTION)))
        assert all(expected[f"aggregates {i}"][0]["results"] for i in range(len(AGGREGATES)))
        assert len(expected["aggregates 0"]) > 2 and expected["aggregates 0"][0]["results"][0]["unique_sessions"]
        assert all(expected[f"counts {i}"]["total"] > 0 for i in range(len(COUNTS)))
        notes = {r["breakdown_value"] for page in expected["aggregates 6"] for r in page["results"]}
        assert late[0]["properties"]["note"] in notes

        # The loader catches up (the arrivals settled, the erasure applied, the day dropped): still equal.
        pg.execute("UPDATE events SET received_at = received_at - interval '10 minutes' WHERE ingest_seq > %s",
                   (status["loaded_up_to_ingest_seq"],))  # fmt: skip
        # A load that dies after its done record, before the erasure: ClickHouse holds the person's events from
        # before the erasure and the one sent after it; the queries count only the latter.
        victim_rows = f"SELECT uuid FROM {target.database}.events FINAL WHERE distinct_id = {{v:String}}"

        def in_clickhouse() -> list[str]:
            return [str(u) for (u,) in client.query(victim_rows, parameters={"v": victim}).result_rows]

        with mock.patch.object(ch, "apply_erasures", return_value=0):
            ch.load_arrivals(pg, client, target, SETTLE)
        assert back["uuid"] in in_clickhouse() and len(in_clickhouse()) > 1
        assert ch.status(pg, client, target)["pending_erasures"] == 1
        assert_same(expected, answers(on_clickhouse, admin_headers))
        assert ch.load_arrivals(pg, client, target, SETTLE).erasures == 1
        assert in_clickhouse() == [back["uuid"]]
        assert ch.drop_days_before(client, target, cutoff.date())
        assert_same(expected, answers(on_clickhouse, admin_headers))

        # The dashboard's overview shows the same numbers through the same functions, from ClickHouse: an event
        # only ClickHouse holds is on the ClickHouse server's page only.
        key = admin_headers["Authorization"].removeprefix("Bearer ")
        before = {name: overview(base, key) for name, base in (("pg", on_postgres), ("ch", on_clickhouse))}
        assert before["ch"] == before["pg"] and sum(before["pg"]["per-day"].values()) > 0
        at = datetime.now(UTC) - timedelta(days=1)
        client.command(
            f"INSERT INTO {target.database}.events (uuid, event_type, distinct_id, properties, property_texts_json, "
            f"timestamp, received_at, ingest_seq) VALUES (generateUUIDv4(), 'seen-on-clickhouse', 'u', '{{}}', "
            f"'{{}}', '{at:%Y-%m-%d %H:%M:%S}', now64(6), 0)"
        )
        try:
            after = overview(on_clickhouse, key)
        finally:
            client.command(f"DELETE FROM {target.database}.events WHERE event_type = 'seen-on-clickhouse'")
        day = at.strftime("%m-%d")
        assert after["per-day"] == {**before["pg"]["per-day"], day: before["pg"]["per-day"][day] + 1}
        assert after["top-types"]["seen-on-clickhouse"] == 1 and "seen-on-clickhouse" not in before["pg"]["top-types"]


def extreme_cursor(at: str, forward: bool) -> str:
    from ingest_api.admin.pagination import Cursor, encode_cursor

    return encode_cursor(Cursor((at, "", "", ""), forward))


ANY_PRICE = {"filter": "properties.price>-1e9", "limit": "3"}
EXTREMES = [
    ("events/event_counts/", {"start": "0001-01-01T00:00:00Z", "end": "0002-06-01T00:00:00Z"}),
    ("events/event_counts/", {"start": "9998-01-01T00:00:00Z", "end": "9999-12-31T00:00:00Z", "breakdown": "os_name"}),
    ("events/event_counts/", {"start": "9997-06-01T00:00:00+05:00", "end": "9999-06-01T00:00:00-05:00"}),
    # With a filter: raw events on both (the marts may not be built when this test runs alone).
    ("event-aggregates/", {"start": "0001-01-02T00:00:00+05:00", "end": "9999-12-31T00:00:00Z", **ANY_PRICE}),
    ("event-aggregates/", {"granularity": "day", "start": "1900-01-01T00:00:00Z", **ANY_PRICE}),
    ("event-aggregates/", {"cursor": extreme_cursor("0001-01-01T00:00:00+00:00", True), **ANY_PRICE}),
    (
        "event-aggregates/",
        {"granularity": "day", "cursor": extreme_cursor("9999-12-31T00:00:00+00:00", False), **ANY_PRICE},
    ),
]


def test_clickhouse_queries_take_any_time_bound_postgres_takes(planted, database_url, chdb_url, admin_headers):
    """Year 1 or 9999 is a valid bound (Postgres takes it); ClickHouse's dates end at 1970 and 2149: the same
    answers, no 500."""
    with ExitStack() as stack:
        on_postgres, on_clickhouse = servers(stack, database_url, chdb_url, RETENTION_DAYS)
        for path, query in EXTREMES:
            found = []
            for base in (on_postgres, on_clickhouse):
                response = httpx.get(f"{base}{ADMIN}/{path}", params=query, headers=admin_headers, timeout=30)
                assert response.status_code == 200, (path, query, response.text)
                found.append(re.sub(r"http://[^/]+", "", response.text))
            assert found[0] == found[1], (path, query)


def test_clickhouse_retention_with_a_return_event_is_the_marts(planted, database_url, chdb_url, admin_headers):
    from orchestration.maintenance import drop_expired_event_partitions

    # After the day's retention drop (the marts' cohorts then start inside the window, as ClickHouse's do).
    drop_expired_event_partitions(planted[0], datetime.now(UTC), RETENTION_DAYS)
    build_marts("stg_eventtrack__events agg_retention_weekly agg_retention_daily", retention_return_event="buy")
    settings = {"events_retention_days": RETENTION_DAYS, "retention_return_event": "buy"}
    with (
        RunningServer(settings_for(database_url, **settings)) as on_postgres,
        RunningServer(settings_for(database_url, clickhouse_url=chdb_url, **settings)) as on_clickhouse,
    ):
        for period in ("week", "day"):
            path, query = f"{ADMIN}/retention/", {"period": period}
            expected = httpx.get(on_postgres.url + path, params=query, headers=admin_headers, timeout=30).json()
            assert (
                expected["return_event"] == "buy"
                and expected["cohorts"][0]["retained"][0] < expected["cohorts"][0]["users"]
            )
            assert (
                httpx.get(on_clickhouse.url + path, params=query, headers=admin_headers, timeout=30).json() == expected
            )


def overview(base: str, key: str) -> dict:
    """The numbers of the dashboard overview's event charts (their tables), signed in with `key`."""
    with httpx.Client(base_url=base, timeout=30) as browser:
        form = browser.get("/admin/login").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        browser.post("/admin/login", data={"api_key": key, "csrf_token": csrf})
        page = browser.get("/admin/")
        assert page.status_code == 200
    found = {}
    for chart in ("per-hour", "per-day", "top-types"):
        figure = page.text.split(f'data-chart="{chart}"')[1].split("</figure>")[0]
        rows = re.findall(r'<tr><td>([^<]+)</td><td class="num">(\d+)</td>', figure)
        found[chart] = {label: int(n) for label, n in rows}
    return found
