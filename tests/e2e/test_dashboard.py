"""The admin dashboard in headless Chromium (Debian's package, driven by Playwright).

A real server over a real database: events and sessions are sent through the
capture API, the dbt marts are built by a Dagster materialization, then the
browser signs in and uses every page. Screenshots go to test-artifacts/screenshots/.
Any console error or uncaught page error fails the test that caused it.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import psycopg
import pytest

from tests.conftest import RAW_TABLES, RunningServer, settings_for, wait_until
from tests.integration.test_pipeline import ANALYTICS_SCHEMAS, Pipeline

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
API = "/api/v1/analytics"
EVENT_TYPES = ("app_open", "screen_view", "purchase", "add_to_cart")


@dataclass
class Seed:
    server: RunningServer
    admin_key: str
    database_url: str
    events: list[dict] = field(default_factory=list)
    session_starts: list[datetime] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def per_day(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for e in self.events:
            counts[e["timestamp"][5:10]] += 1  # the charts' "MM-DD" labels
        return counts

    def explicit_sessions_per_day(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for started in self.session_starts:
            counts[started.strftime("%m-%d")] += 1
        return counts

    def users_on(self, day: str) -> int:
        return len({e["distinct_id"] for e in self.events if e["timestamp"][:10] == day})


@pytest.fixture(scope="module")
def dashboard_server(database_url, tmp_path_factory) -> Iterator[RunningServer]:
    # Nothing listens on the Dagster port: the overview must say so and still render.
    from tests.conftest import free_port

    data_dir = tmp_path_factory.mktemp("dashboard-data")
    with RunningServer(settings_for(database_url, data_dir=data_dir, dagster_port=free_port())) as server:
        yield server


@pytest.fixture(scope="module")
def raw_seed(database_url, dashboard_server) -> Seed:
    """Raw tables emptied and filled through the API; no analytics schema yet."""
    from ingest_api.admin.key_store import create_admin_key

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE " + ", ".join(RAW_TABLES))
        for schema in ANALYTICS_SCHEMAS:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    _, key = create_admin_key(database_url, "dashboard tests")
    seed = Seed(dashboard_server, key, database_url)
    now = datetime.now(UTC).replace(microsecond=0)
    with httpx.Client(base_url=dashboard_server.url, timeout=30) as client:
        # Three users get an explicit session today, ended by the app after 10, 20 and 30 minutes.
        sessions = {}
        for n, user in enumerate(("u0", "u1", "u2")):
            sid = str(uuid.uuid4())
            started = now - timedelta(hours=2, minutes=10 * (n + 1))
            client.post(
                f"{API}/session/start/",
                json={"distinct_id": user, "session_id": sid, "started_at": started.isoformat()},
            ).raise_for_status()
            ended = started + timedelta(minutes=10 * (n + 1))
            client.put(f"{API}/session/{sid}/end/", json={"ended_at": ended.isoformat()}).raise_for_status()
            sessions[user] = (sid, started)
            seed.session_starts.append(started)
        events = []
        for i in range(130):  # over the last 3 days, each at its own second
            user = f"u{i % 9}"
            ts = now - timedelta(hours=1 + (i * 53) % 70, seconds=i)
            event = {
                "uuid": str(uuid.uuid4()),
                "event": EVENT_TYPES[i % len(EVENT_TYPES)],
                "distinct_id": user,
                "timestamp": ts.isoformat(),
                "properties": {"screen": f"screen-{i % 5}", "index": i},
                "app_version": "1.2.0",
                "os_name": "ios" if i % 2 else "android",
            }
            if user in sessions and i % 3 == 0:
                sid, started = sessions[user]
                event["session_id"] = sid
                event["timestamp"] = (started + timedelta(minutes=1, seconds=i)).isoformat()
            events.append(event)
        answer = client.post(f"{API}/batch/", json={"events": events}).json()
        assert answer["accepted"] == len(events), answer
        seed.events = [
            {**e, "timestamp": datetime.fromisoformat(e["timestamp"]).astimezone(UTC).isoformat()} for e in events
        ]
    return seed


@pytest.fixture(scope="module")
def seed(raw_seed: Seed, dbt_env) -> Seed:  # noqa: F811
    """The same data with the marts built by Dagster (what `eventtrack catch-up` runs)."""
    from dagster import DailyPartitionsDefinition  # noqa: F401 (dagster import up front: clearer failure)

    from eventtrack.settings import Settings
    from orchestration.partitions import last_complete_partition_key

    now = datetime.now(UTC)
    pipeline = Pipeline(Settings(database_url=raw_seed.database_url))
    pipeline.run_all(
        last_complete_partition_key(pipeline.hourly_aggregates.partitions_def, now),
        last_complete_partition_key(pipeline.daily_aggregates.partitions_def, now),
    )
    return raw_seed


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser, request):
    """A fresh browser context (no cookies); fails the test on any console error or page error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    tab.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    yield tab
    context.close()
    # A page answered with a 4xx on purpose (a refused sign-in, a form with errors) is logged by
    # Chromium as a failed resource; a test states the statuses it expects with `allow_status`.
    allowed = getattr(tab, "allowed_statuses", set())
    problems = [p for p in problems if not any(f"status of {code} " in p for code in allowed)]
    assert problems == [], problems


def allow_status(tab, *codes: int) -> None:
    tab.allowed_statuses = getattr(tab, "allowed_statuses", set()) | set(codes)


def shot(tab, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in(tab, seed: Seed, next_path: str = "/admin/") -> None:
    tab.goto(seed.url + next_path)
    assert "/admin/login" in tab.url
    tab.get_by_label("Admin API key").fill(seed.admin_key)
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url(re.compile(re.escape(seed.url + next_path) + r"(\?.*)?$"))


def chart_numbers(tab, chart_id: str) -> dict[str, str]:
    rows = tab.locator(f'figure[data-chart="{chart_id}"] table.numbers tbody tr')
    # text_content: the table sits in a closed <details>, which inner_text would read as empty.
    return {
        rows.nth(i).locator("td").nth(0).text_content(): rows.nth(i).locator("td").nth(1).text_content()
        for i in range(rows.count())
    }


# --- before the pipeline ran ----------------------------------------------------------------


def test_overview_before_the_first_pipeline_run_explains_instead_of_failing(page, raw_seed):
    sign_in(page, raw_seed)
    assert page.locator("#no-analytics").is_visible()
    assert page.locator("#accepted-last-hour").inner_text() == str(len(raw_seed.events))
    assert "not reachable" in page.locator("#pipeline").inner_text()
    shot(page, "overview-before-pipeline")


# --- with the marts built -----------------------------------------------------------------


def test_overview_draws_the_charts_from_the_seeded_data(page, seed):
    sign_in(page, seed)
    for chart in ("per-hour", "per-day", "top-types", "dau", "sessions-per-day", "median-duration"):
        figure = page.locator(f'figure[data-chart="{chart}"]')
        assert figure.locator("svg").count() == 1, chart
        assert figure.locator("svg .plot").count() >= 1, chart  # pygal drew a plot area
    assert page.locator('figure[data-chart="per-day"] svg rect.rect').count() >= 3  # one bar per day with events

    per_day = chart_numbers(page, "per-day")
    for label, count in seed.per_day().items():
        assert per_day[label] == str(count), label
    assert sum(int(v) for v in per_day.values()) == len(seed.events)

    top = chart_numbers(page, "top-types")
    expected = defaultdict(int)
    for e in seed.events:
        expected[e["event"]] += 1
    assert {k: int(v) for k, v in top.items()} == dict(expected)

    latest_day = max(e["timestamp"][:10] for e in seed.events)
    assert page.locator("#dau").get_attribute("data-day") == latest_day
    assert page.locator("#dau").inner_text() == str(seed.users_on(latest_day))
    assert int(page.locator("#mau").inner_text()) == len({e["distinct_id"] for e in seed.events})

    per_day_sessions = chart_numbers(page, "sessions-per-day")
    for label, explicit in seed.explicit_sessions_per_day().items():
        assert int(per_day_sessions[label]) >= explicit  # derived sessions come on top
    shot(page, "overview")


def test_pages_need_a_session_and_a_wrong_key_is_refused(page, seed):
    allow_status(page, 401)
    page.goto(seed.url + "/admin/events")
    assert "/admin/login" in page.url
    page.get_by_label("Admin API key").fill("etadm_not-a-key")
    with page.expect_response(lambda r: r.url.endswith("/admin/login") and r.request.method == "POST") as answer:
        page.get_by_role("button", name="Sign in").click()
    assert answer.value.status == 401
    assert "not an active admin API key" in page.locator("#login-error").inner_text()


def test_events_explorer_pages_through_every_event_and_shows_one_as_json(page, seed):
    sign_in(page, seed, "/admin/events")
    seen: list[str] = []
    while True:
        links = page.locator("#events-table a.event-link")
        seen += [links.nth(i).get_attribute("href").split("/events/")[1].split("?")[0] for i in range(links.count())]
        older = page.get_by_role("link", name="Older →")
        if older.count() == 0:
            break
        older.click()
        page.wait_for_load_state()
    assert len(seen) == len(seed.events) and set(seen) == {e["uuid"] for e in seed.events}

    page.get_by_role("link", name="← Newer").click()
    page.wait_for_load_state()
    page.locator("#events-table a.event-link").first.click()
    text = page.locator("#event-json").inner_text()
    import json

    shown = json.loads(text)
    original = next(e for e in seed.events if e["uuid"] == shown["uuid"])
    assert shown["properties"] == original["properties"] and shown["event_type"] == original["event"]
    shot(page, "event-json")

    page.goto(seed.url + "/admin/events?event_type=purchase&distinct_id=u3")
    rows = page.locator("#events-table tbody tr")
    expected = [e for e in seed.events if e["event"] == "purchase" and e["distinct_id"] == "u3"]
    assert rows.count() == len(expected) > 0
    # The time inputs are datetime-local (no zone): read as UTC.
    times = sorted(datetime.fromisoformat(e["timestamp"]) for e in seed.events)
    cutoff = times[-10]
    page.goto(seed.url + "/admin/events?" + urlencode({"start": cutoff.strftime("%Y-%m-%dT%H:%M:%S")}))
    assert page.locator("#events-table a.event-link").count() == sum(t >= cutoff for t in times)
    # The browser writes a datetime-local value without its seconds when they are 0 (so the text is compared as a time).
    shown = datetime.fromisoformat(page.locator("#f-start").input_value())
    assert shown == cutoff.replace(tzinfo=None, microsecond=0)

    allow_status(page, 400)
    page.goto(seed.url + "/admin/events?start=not-a-time")
    assert "start" in page.locator(".alert.error").inner_text()
    shot(page, "events")


def test_sessions_list_shows_the_explicit_sessions(page, seed):
    sign_in(page, seed, "/admin/sessions")
    rows = page.locator("#sessions-table tbody tr")
    assert rows.count() == 3
    assert sorted(rows.nth(i).locator("td").nth(3).inner_text() for i in range(3)) == [
        "10.0 min",
        "20.0 min",
        "30.0 min",
    ]
    # Shown in UTC, whatever time zone the database session answers in (PGTZ is set for dbt here).
    shown = sorted(rows.nth(i).locator("td").nth(0).inner_text() for i in range(3))
    assert shown == sorted(t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") for t in seed.session_starts)
    shot(page, "sessions")


def test_flag_form_shows_validation_errors_then_create_and_toggle_change_for_user(page, seed):
    with httpx.Client(base_url=seed.url, timeout=30) as client:

        def for_user() -> dict:
            return client.get(f"{API}/public/feature-flags/for_user/", params={"distinct_id": "someone"}).json()

        allow_status(page, 400)  # the form with the API's validation errors
        sign_in(page, seed, "/admin/flags")
        page.get_by_role("link", name="New flag").click()
        page.get_by_label("Key", exact=True).fill("new-checkout")
        page.get_by_label("Rollout percentage slider").fill("40")  # the slider drives the number field
        assert page.get_by_label("Rollout percentage", exact=True).input_value() == "40"
        page.get_by_label("Rollout percentage", exact=True).fill("100")
        page.get_by_label("Variants (JSON)").fill(
            '[{"key": "a", "rollout_percentage": 30}, {"key": "b", "rollout_percentage": 30}]'
        )
        page.get_by_role("button", name="Save flag").click()
        errors = page.locator("#variants-errors").inner_text()
        assert "100" in errors  # the API's own message: the weights must add up to 100
        assert page.get_by_label("Key", exact=True).input_value() == "new-checkout"  # the form keeps what was typed
        shot(page, "flag-form-errors")

        page.get_by_label("Variants (JSON)").fill("")
        page.get_by_role("button", name="Save flag").click()
        assert "new-checkout" in page.locator("#saved").inner_text()
        assert wait_until(lambda: _active(for_user(), "new-checkout") is True, timeout=1.5)

        page.get_by_role("button", name="Turn off new-checkout").click()
        assert page.get_by_role("button", name="Turn on new-checkout").is_visible()
        assert wait_until(lambda: _active(for_user(), "new-checkout") is False, timeout=1.5)
        shot(page, "flags")

        page.get_by_role("link", name="new-checkout").click()
        page.get_by_label("Rollout percentage", exact=True).fill("150")
        page.get_by_role("button", name="Save flag").click()
        assert "0 to 100" in page.locator("#rollout_percentage-errors").inner_text()


def _active(for_user: dict, key: str) -> bool | None:
    return for_user.get(key, {}).get("active")


def test_replay_stores_the_dead_letters_that_are_valid_now(page, seed, tmp_path):
    too_big = {"event": "big", "distinct_id": "u-replay", "uuid": str(uuid.uuid4()), "properties": {"note": "x" * 400}}
    # Refused by a server with a tighter event limit than the dashboard's (as if the limit was raised since).
    with RunningServer(settings_for(seed.database_url, max_event_bytes=200, data_dir=tmp_path)) as strict:
        answer = httpx.post(f"{strict.url}{API}/capture/", json=too_big, timeout=30)
        assert answer.status_code == 413
    httpx.post(f"{seed.url}{API}/capture/", json={"event": "no_user"}, timeout=30)  # invalid whatever the limits

    with psycopg.connect(seed.database_url, autocommit=True) as conn:
        ids = {r[1]: r[0] for r in conn.execute("SELECT id, reason FROM rejected_events WHERE replayed_at IS NULL")}
    assert set(ids) == {"event_too_large", "validation_error"}

    sign_in(page, seed, "/admin/rejected")
    for rejected_id in ids.values():
        page.locator(f"#sel-{rejected_id}").check()
    shot(page, "rejected")
    page.get_by_role("button", name="Replay selected").click()
    assert page.locator("#replay-result").inner_text() == "Replayed 1; still invalid 1; not replayable 0."
    assert page.locator(f"#rejected-{ids['event_too_large']}").count() == 0  # replayed rows leave the default list
    assert page.locator(f"#rejected-{ids['validation_error']}").count() == 1

    with psycopg.connect(seed.database_url, autocommit=True) as conn:
        stored = conn.execute(
            "SELECT uuid::text, properties->>'note' FROM events WHERE distinct_id = 'u-replay'"
        ).fetchall()
        marked = conn.execute("SELECT reason FROM rejected_events WHERE replayed_at IS NOT NULL").fetchall()
    assert stored == [(too_big["uuid"], "x" * 400)]
    assert marked == [("event_too_large",)]

    # Replaying the same row again (a stale form) stores nothing twice.
    page.goto(seed.url + "/admin/rejected?show=all")
    csrf = page.locator('#replay-form input[name="csrf_token"]').input_value()
    again = page.request.post(
        seed.url + "/admin/rejected/replay", form={"csrf_token": csrf, "id": str(ids["event_too_large"])}
    )
    assert again.ok
    with psycopg.connect(seed.database_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM events WHERE distinct_id = 'u-replay'").fetchone()[0] == 1


def test_forms_without_the_csrf_token_are_refused(page, seed):
    sign_in(page, seed, "/admin/flags")
    for form in (
        {"key": "csrf-less", "rollout_percentage": "50"},
        {"key": "csrf-less", "rollout_percentage": "50", "csrf_token": "forged"},
    ):
        answer = page.request.post(seed.url + "/admin/flags/new", form=form, max_redirects=0)
        assert answer.status == 403
    with psycopg.connect(seed.database_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM feature_flags WHERE key = 'csrf-less'").fetchone()[0] == 0


def test_session_cookie_is_httponly_lax_scoped_and_secure_behind_https(seed):
    plain = httpx.get(seed.url + "/admin/login", timeout=30).headers["set-cookie"]
    assert "HttpOnly" in plain and "SameSite=Lax" in plain and "Path=/admin/" in plain and "Secure" not in plain
    # Behind a TLS-terminating proxy on the same host (uvicorn trusts 127.0.0.1's X-Forwarded-Proto).
    secure = httpx.get(seed.url + "/admin/login", headers={"x-forwarded-proto": "https"}, timeout=30).headers[
        "set-cookie"
    ]
    assert "Secure" in secure


def test_the_dashboard_cookie_opens_no_json_api(page, seed):
    sign_in(page, seed)
    answer = page.request.get(seed.url + f"{API}/admin/feature-flags/")
    assert answer.status == 401


def test_phone_width_layout_has_no_horizontal_scroll(browser, seed):
    context = browser.new_context(
        viewport={"width": 375, "height": 812}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    try:
        sign_in(tab, seed)
        for path, name in (
            ("/admin/", "phone-overview"),
            ("/admin/events", "phone-events"),
            ("/admin/flags", "phone-flags"),
            ("/admin/flags/new", "phone-flag-form"),
            ("/admin/rejected", "phone-rejected"),
            ("/admin/funnels", "phone-funnels-empty"),
            ("/admin/experiments", "phone-experiments-empty"),
            ("/admin/live/", "phone-live"),
            ("/admin/destinations/", "phone-destinations-empty"),
            ("/admin/churn", "phone-churn-empty"),
        ):
            tab.goto(seed.url + path)
            width = tab.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, (path, width)
            shot(tab, name)
    finally:
        context.close()
    assert problems == []


def test_logout_ends_the_session(page, seed):
    sign_in(page, seed)
    page.get_by_role("button", name="Sign out").click()
    assert "You are signed out" in page.locator(".alert.ok").inner_text()
    page.goto(seed.url + "/admin/flags")
    assert "/admin/login" in page.url


def test_revoking_the_key_ends_its_dashboard_sessions(page, seed):
    from ingest_api.admin.key_store import create_admin_key, revoke_admin_key

    key_id, key = create_admin_key(seed.database_url, "revoked soon")
    own = Seed(seed.server, key, seed.database_url)
    wait_until(
        lambda: (
            httpx.get(f"{seed.url}{API}/admin/feature-flags/", headers={"Authorization": f"Bearer {key}"}).status_code
            == 200
        )
    )
    sign_in(page, own, "/admin/flags")
    assert revoke_admin_key(seed.database_url, key_id)

    def signed_out() -> bool:
        page.goto(seed.url + "/admin/flags")
        return "/admin/login" in page.url

    assert wait_until(signed_out, timeout=3, interval=0.2)


# --- funnels and experiments (last: they send events of their own) ----------------------------------

FUNNEL_STEPS = ("dv_open", "dv_cart", "dv_buy")


@pytest.fixture(scope="module")
def funnel_day(seed: Seed) -> datetime:
    """Yesterday (UTC), noon: 3 users open, 2 of them add to cart (10 and 20 minutes later), 1 buys (20 minutes after that).

    Yesterday, so a saved funnel (whole UTC days up to today's midnight) counts them too.
    """
    noon = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)
    plan = {"f1": ("ios", [0, 10, 30]), "f2": ("android", [0, 20]), "f3": ("android", [0])}
    events = [
        {
            "uuid": str(uuid.uuid4()),
            "event": FUNNEL_STEPS[k],
            "distinct_id": user,
            "os_name": os_name,
            "timestamp": (noon + timedelta(minutes=m)).isoformat(),
        }
        for user, (os_name, minutes) in plan.items()
        for k, m in enumerate(minutes)
    ]
    answer = httpx.post(f"{seed.url}{API}/batch/", json={"events": events}, timeout=30).json()
    assert answer["accepted"] == len(events), answer
    return noon


def _admin(seed: Seed) -> httpx.Client:
    return httpx.Client(base_url=seed.url, timeout=30, headers={"Authorization": f"Bearer {seed.admin_key}"})


def _table(tab, selector: str) -> list[list[str]]:
    rows = tab.locator(f"{selector} tbody tr")
    return [[c.strip() for c in rows.nth(i).locator("th, td").all_inner_texts()] for i in range(rows.count())]


def test_funnel_page_shows_the_users_conversions_and_median_times_of_a_known_funnel(page, seed, funnel_day):
    day = funnel_day.date().isoformat()
    sign_in(page, seed, "/admin/funnels")
    page.get_by_label("Steps").fill(",".join(FUNNEL_STEPS))
    page.get_by_label("Window").fill("24h")
    page.get_by_label("From (UTC day)").fill(day)
    page.get_by_label("Through (UTC day)").fill(day)
    page.get_by_label("Breakdown (optional)").fill("os_name")
    page.get_by_role("button", name="Show funnel").click()
    page.wait_for_load_state()
    assert _table(page, "#funnel-table") == [
        ["1. dv_open", "3", "100.0 %", "100.0 %", "–"],
        ["2. dv_cart", "2", "66.7 %", "66.7 %", "15.0 min"],  # median of 10 and 20 minutes
        ["3. dv_buy", "1", "50.0 %", "33.3 %", "20.0 min"],
    ]
    assert chart_numbers(page, "funnel-steps") == {"dv_open": "3", "dv_cart": "2", "dv_buy": "1"}
    assert page.locator('figure[data-chart="funnel-steps"] svg rect.rect').count() == 3
    assert _table(page, "#funnel-breakdown") == [["android", "2", "1", "0", "0.0 %"], ["ios", "1", "1", "1", "100.0 %"]]
    assert page.get_by_label("Steps").input_value() == ",".join(FUNNEL_STEPS)  # the form keeps the query
    shot(page, "funnel")

    # The day before has none of these events: every step 0.
    before = (funnel_day - timedelta(days=1)).date().isoformat()
    page.goto(
        seed.url + "/admin/funnels?" + urlencode({"steps": ",".join(FUNNEL_STEPS), "start": before, "end": before})
    )
    assert [row[1] for row in _table(page, "#funnel-table")] == ["0", "0", "0"]


def test_funnel_page_shows_the_api_validation_errors_in_the_form(page, seed):
    allow_status(page, 400)
    sign_in(page, seed, "/admin/funnels")
    page.get_by_label("Steps").fill("dv_open")
    page.get_by_label("Window").fill("forever")
    with page.expect_response(lambda r: "/admin/funnels?" in r.url) as answer:
        page.get_by_role("button", name="Show funnel").click()
    assert answer.value.status == 400
    assert "2 to 10 event types" in page.locator("#funnel-error [role=alert]").inner_text()  # the API's own message
    assert page.get_by_label("Steps").get_attribute("aria-invalid") == "true"
    assert page.get_by_label("Window").input_value() == "forever"  # the form keeps what was typed
    assert page.locator("#funnel-table").count() == 0

    page.get_by_label("Steps").fill("dv_open,dv_cart")
    page.get_by_role("button", name="Show funnel").click()
    page.wait_for_load_state()
    assert "e.g. 24h" in page.locator("#funnel-error [role=alert]").inner_text()
    assert page.get_by_label("Window").get_attribute("aria-invalid") == "true"
    assert page.get_by_label("Steps").get_attribute("aria-invalid") is None
    shot(page, "funnel-errors")

    page.goto(seed.url + "/admin/funnels?" + urlencode({"steps": "a,b", "breakdown": "no such thing"}))
    assert "breakdown" in page.locator("#funnel-error").inner_text()


@pytest.fixture(scope="module")
def saved_funnel(seed: Seed) -> dict:
    with _admin(seed) as admin:
        answer = admin.post(
            f"{API}/admin/funnels/saved/",
            json={"name": "Dashboard purchase", "steps": list(FUNNEL_STEPS), "window": "24h", "range_days": 7},
        )
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_saved_funnels_are_listed_without_results_before_the_pipeline_runs(page, seed, saved_funnel):
    sign_in(page, seed, "/admin/funnels")
    card = page.locator(f"#saved-funnel-{saved_funnel['id']}")
    assert "Dashboard purchase" in card.inner_text()
    assert "No results yet" in card.locator(".no-results").inner_text()
    card.get_by_role("link", name="Run now").click()
    page.wait_for_load_state()
    assert page.get_by_label("Steps").input_value() == ",".join(FUNNEL_STEPS)
    assert page.locator("#funnel-table").count() == 1


EXPOSURE = "$feature_flag_called"


@pytest.fixture(scope="module")
def experiment(seed: Seed, funnel_day: datetime) -> dict:
    """A 50/50 flag exposed 10 times as control (2 purchases) and 40 as test (12): a sample-ratio mismatch; 1 user saw both."""
    start = funnel_day.replace(hour=0)
    with _admin(seed) as admin:
        flag = admin.post(f"{API}/admin/feature-flags/", json={
            "key": "dash-exp", "rollout_percentage": 100,
            "variants": [{"key": "control", "rollout_percentage": 50}, {"key": "test", "rollout_percentage": 50}],
        })  # fmt: skip
        assert flag.status_code == 201, flag.text
        created = admin.post(f"{API}/admin/experiments/", json={
            "name": "Dashboard checkout", "flag_key": "dash-exp", "goal_event": "dv_purchase",
            "start_at": start.isoformat(), "end_at": (start + timedelta(days=1)).isoformat(),
        })  # fmt: skip
        assert created.status_code == 201, created.text
    events = []

    def add(name: str, user: str, minutes: int, **properties) -> None:
        events.append(
            {
                "uuid": str(uuid.uuid4()),
                "event": name,
                "distinct_id": user,
                "timestamp": (funnel_day + timedelta(minutes=minutes)).isoformat(),
                "properties": properties,
            }
        )

    for variant, users, converters in (("control", 10, 2), ("test", 40, 12)):
        for i in range(users):
            add(EXPOSURE, f"x-{variant}-{i}", 1, **{"$feature_flag": "dash-exp", "$feature_flag_response": variant})
            if i < converters:
                add("dv_purchase", f"x-{variant}-{i}", 5)
    for variant in ("control", "test"):
        add(EXPOSURE, "x-both", 2, **{"$feature_flag": "dash-exp", "$feature_flag_response": variant})
    answer = httpx.post(f"{seed.url}{API}/batch/", json={"events": events}, timeout=30).json()
    assert answer["accepted"] == len(events), answer
    return created.json()


def test_experiments_page_lists_an_experiment_and_says_it_has_no_results_yet(page, seed, experiment):
    sign_in(page, seed, "/admin/experiments")
    row = page.locator(f"#experiment-{experiment['id']}")
    assert "dash-exp" in row.inner_text()
    shot(page, "experiments")
    row.get_by_role("link", name="Dashboard checkout").click()
    page.wait_for_load_state()
    assert "No results yet" in page.locator("#no-results").inner_text()
    assert page.locator("#results-table").count() == 0
    shot(page, "experiment-no-results")

    allow_status(page, 404)
    for missing in ("999999999", "not-an-id"):
        assert page.goto(f"{seed.url}/admin/experiments/{missing}").status == 404
        assert page.get_by_role("heading", name="Experiment not found").is_visible()


def test_experiment_results_computed_by_the_pipeline_are_shown_with_the_srm_warning(
    page, seed, experiment, saved_funnel
):
    from eventtrack.settings import Settings
    from orchestration.dbt import dbt_models
    from orchestration.experiments import experiment_results
    from orchestration.funnels import funnel_results

    Pipeline(Settings(database_url=seed.database_url)).materialize([dbt_models, experiment_results, funnel_results])
    sign_in(page, seed, f"/admin/experiments/{experiment['id']}")
    assert page.locator("#no-results").count() == 0
    assert "Sample ratio mismatch" in page.locator("#srm-warning").inner_text()
    assert page.locator("#multi-exposure").inner_text().startswith("1 ")
    control, test = _table(page, "#results-table")
    assert control[0].startswith("control") and control[1:5] == ["10", "2", "20.00 %", "–"]
    assert test[0].startswith("test") and test[1:4] == ["40", "12", "30.00 %"]
    assert test[4].startswith("+10.0 pp (+50.0 %)")
    assert page.locator('#results-table tr[data-variant="test"].srm').count() == 1
    probability = float(test[5].rstrip(" %"))
    assert 50 < probability < 100
    assert float(test[6]) > 0  # a p-value, not a dash
    shot(page, "experiment-results")

    # The same run built the saved funnel's results (yesterday is inside its last 7 whole days).
    page.goto(seed.url + "/admin/funnels")
    card = page.locator(f"#saved-funnel-{saved_funnel['id']}")
    assert [row[:2] for row in _table(page, f"#saved-funnel-{saved_funnel['id']}")] == [
        ["1. dv_open", "3"],
        ["2. dv_cart", "2"],
        ["3. dv_buy", "1"],
    ]
    assert card.locator(".no-results").count() == 0
    shot(page, "funnels-saved")


def test_funnel_and_experiment_pages_fit_a_phone(browser, seed, experiment, funnel_day):
    context = browser.new_context(
        viewport={"width": 375, "height": 812}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    day = funnel_day.date().isoformat()
    funnel = "/admin/funnels?" + urlencode(
        {"steps": ",".join(FUNNEL_STEPS), "start": day, "end": day, "breakdown": "os_name"}
    )
    try:
        sign_in(tab, seed)
        for path, name in (
            (funnel, "phone-funnels"),
            ("/admin/experiments", "phone-experiments"),
            (f"/admin/experiments/{experiment['id']}", "phone-experiment"),
        ):
            tab.goto(seed.url + path)
            width = tab.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, (path, width)
            shot(tab, name)
    finally:
        context.close()
    assert problems == []


# --- live events and destinations (last: they send events of their own) ----------------------------------


def _capture(seed: Seed, event_type: str) -> str:
    event = {"uuid": str(uuid.uuid4()), "event": event_type, "distinct_id": "live-user", "properties": {"n": 1}}
    answer = httpx.post(f"{seed.url}{API}/capture/", json=event, timeout=30)
    assert answer.status_code == 200, answer.text
    return event["uuid"]


def _live_rows(tab) -> list[str]:
    return tab.locator("#live-rows tr[data-uuid]").evaluate_all("rows => rows.map(r => r.dataset.uuid)")


def _live_shows(tab, uuids: list[str]) -> None:
    """Waits (3 s at most) until the Live list is `uuids`, newest first."""
    from playwright.sync_api import expect

    expect(tab.locator("#live-rows tr[data-uuid]")).to_have_count(len(uuids), timeout=3000)
    expect(tab.locator("#live-rows tr[data-uuid]").first).to_have_attribute("data-uuid", uuids[0], timeout=3000)
    assert _live_rows(tab) == uuids


def test_live_page_shows_new_events_filters_them_and_a_pause_skips_none(page, raw_seed):
    from playwright.sync_api import expect

    sign_in(page, raw_seed, "/admin/live/")
    status = page.locator("#live-status")
    expect(status).to_have_attribute("data-state", "live")
    first = [_capture(raw_seed, "live_a"), _capture(raw_seed, "live_b")]
    _live_shows(page, first[::-1])
    # Each row links to the event's own page.
    href = page.locator(f'#live-rows tr[data-uuid="{first[0]}"] a.event-link').get_attribute("href")
    opened = page.request.get(raw_seed.url + href)
    assert opened.status == 200 and first[0] in opened.text()

    page.get_by_label("Event type").fill("live_b")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r".*/admin/live/\?event_type=live_b&"))
    expect(status).to_have_attribute("data-state", "live")
    sent = [_capture(raw_seed, t) for t in ("live_a", "live_b", "live_a", "live_b")]
    # Arrival order: once the last live_b shows, a live_a before it would have shown too.
    _live_shows(page, [sent[3], sent[1]])
    shot(page, "live")

    page.get_by_role("button", name="Pause").click()
    expect(status).to_have_attribute("data-state", "paused")
    missed = [_capture(raw_seed, "live_b"), _capture(raw_seed, "live_b")]
    page.wait_for_timeout(1000)  # an open stream shows an event within the horizon's poll (0.2 s) and a query
    assert _live_rows(page) == [sent[3], sent[1]]
    page.get_by_role("button", name="Resume").click()
    _live_shows(page, [*missed[::-1], sent[3], sent[1]])
    expect(status).to_have_attribute("data-state", "live")

    # The list keeps the newest 200 rows.
    batch = [
        {"uuid": str(uuid.uuid4()), "event": "live_b", "distinct_id": "live-user", "properties": {"i": i}}
        for i in range(201)
    ]
    assert httpx.post(f"{raw_seed.url}{API}/batch/", json={"events": batch}, timeout=30).json()["accepted"] == 201
    last = _capture(raw_seed, "live_b")
    expect(page.locator("#live-rows tr[data-uuid]").first).to_have_attribute("data-uuid", last, timeout=3000)
    shown = _live_rows(page)
    assert len(shown) == 200 and set(shown[1:]) <= {e["uuid"] for e in batch}
    seqs = page.locator("#live-rows tr[data-uuid]").evaluate_all("rows => rows.map(r => Number(r.dataset.seq))")
    assert seqs == sorted(seqs, reverse=True)


def test_live_page_refuses_a_malformed_property_filter(page, raw_seed):
    allow_status(page, 400)
    sign_in(page, raw_seed, "/admin/live/")
    page.get_by_label("Property filter").fill("plan=pro")
    page.get_by_role("button", name="Apply").click()
    assert "properties." in page.locator(".alert.error").inner_text()
    assert page.locator("#live").count() == 0  # no stream opened
    assert page.get_by_label("Property filter").input_value() == "plan=pro"


def test_destinations_page_shows_a_destination_s_numbers_and_pauses_and_resumes_it(page, raw_seed):
    with _admin(raw_seed) as admin:
        created = admin.post(
            f"{API}/admin/destinations/",
            json={"name": "dash-hook", "url": "http://127.0.0.1:9/hook", "event_types": ["dest_evt"]},
        )
        assert created.status_code == 201, created.text
        hook = created.json()
        for event_type in ("dest_evt", "other_evt", "dest_evt", "dest_evt"):
            _capture(raw_seed, event_type)
        # Counters as the delivery worker would have left them (none runs here).
        with psycopg.connect(raw_seed.database_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE destinations SET delivered_events = 7, delivered_batches = 2, failed_attempts = 5,"
                " dead_lettered_events = 4, last_status = 500, last_error = 'HTTP 500: boom' WHERE id = %s",
                (hook["id"],),
            )
        assert wait_until(lambda: admin.get(f"{API}/admin/destinations/{hook['id']}/").json()["lag"]["events"] == 3)

        sign_in(page, raw_seed, "/admin/destinations/")
        row = page.locator(f"#destination-{hook['id']}")
        assert row.get_attribute("data-status") == "active"
        assert row.locator("[data-lag-events]").get_attribute("data-lag-events") == "3"
        assert float(row.locator("[data-lag-seconds]").get_attribute("data-lag-seconds")) > 0
        numbers = {
            name: row.locator(f'[data-field="{name}"]').inner_text()
            for name in ("delivered_events", "failed_attempts", "dead_lettered_events", "last_error")
        }
        assert numbers["delivered_events"].startswith("7\n2 batches")
        assert (numbers["failed_attempts"], numbers["dead_lettered_events"]) == ("5", "4")
        assert numbers["last_error"] == "500 HTTP 500: boom"
        shot(page, "destinations")

        row.get_by_role("button", name="Pause dash-hook").click()
        assert "dash-hook is paused" in page.locator("#saved").inner_text()
        answer = admin.get(f"{API}/admin/destinations/{hook['id']}/").json()
        assert (answer["status"], answer["paused_reason"]) == ("paused", "paused by an admin")
        assert answer["cursor_seq"] == hook["cursor_seq"]  # paused in place: nothing skipped

        page.locator(f"#destination-{hook['id']}").get_by_role("button", name="Resume dash-hook").click()
        assert "dash-hook is active" in page.locator("#saved").inner_text()
        assert admin.get(f"{API}/admin/destinations/{hook['id']}/").json()["status"] == "active"
