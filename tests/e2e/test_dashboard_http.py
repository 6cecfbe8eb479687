"""The dashboard's sessions and listings over plain HTTP (no browser): sign-out, HEAD, cursors, the live stream."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.conftest import RunningServer, settings_for, wait_until

ADMIN_API = "/api/v1/analytics/admin"
CRAFTED_CURSOR = "eyJrIjpbdHJ1ZV0sImYiOnRydWV9"  # {"k":[true],"f":true}


@pytest.fixture(scope="module")
def dashboard(database_url, tmp_path_factory) -> Iterator[RunningServer]:
    settings = settings_for(database_url, data_dir=tmp_path_factory.mktemp("dashboard-http"), dashboard_secret="s" * 40)
    with RunningServer(settings) as server:
        yield server


@pytest.fixture
def admin_key(dashboard, db, database_url) -> str:
    from ingest_api.admin.key_store import create_admin_key

    _, key = create_admin_key(database_url, "dashboard http")
    wait_until(
        lambda: (
            httpx.get(f"{dashboard.url}{ADMIN_API}/events/", headers={"Authorization": f"Bearer {key}"}).status_code
            == 200
        )
    )
    return key


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


@contextmanager
def signed_in_client(dashboard: RunningServer, admin_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dashboard.url, timeout=30) as client:
        form = client.get("/admin/login")
        answer = client.post(
            "/admin/login", data={"api_key": admin_key, "csrf_token": csrf_of(form.text), "next": "/admin/flags"}
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/admin/flags", answer.text
        yield client


def create_flag(client: httpx.Client, admin_key: str, body: dict) -> dict:
    """A flag created through the admin API (the dashboard then shows it)."""
    answer = client.post(f"{ADMIN_API}/feature-flags/", json=body, headers={"Authorization": f"Bearer {admin_key}"})
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_signing_out_ends_the_session_for_a_copy_of_the_cookie(dashboard, admin_key, db):
    with signed_in_client(dashboard, admin_key) as client:
        flag = create_flag(client, admin_key, {"key": "signout", "rollout_percentage": 10})
        page = client.get("/admin/flags")
        assert page.status_code == 200 and "signout" in page.text
        copied_cookie, csrf = client.cookies["eventtrack_admin"], csrf_of(page.text)
        assert (
            client.post("/admin/logout", data={"csrf_token": csrf}).headers["location"] == "/admin/login?signed_out=1"
        )

    with httpx.Client(base_url=dashboard.url, timeout=30, cookies={"eventtrack_admin": copied_cookie}) as thief:
        opened = thief.get("/admin/flags")
        assert opened.status_code == 303 and opened.headers["location"].startswith("/admin/login")
        assert "Admin API key" in thief.get(opened.headers["location"]).text  # the sign-in page
        toggled = thief.post(f"/admin/flags/{flag['id']}/toggle", data={"csrf_token": csrf, "active": "false"})
        assert toggled.status_code == 403
    assert db.execute("SELECT active FROM feature_flags WHERE id = %s", (flag["id"],)).fetchone() == (True,)


def test_a_session_signed_out_in_one_worker_is_signed_out_in_another(dashboard, admin_key, database_url, tmp_path):
    # Another API process on the same database and secret: what one signs out, the other refuses at once.
    settings = settings_for(database_url, data_dir=tmp_path, dashboard_secret="s" * 40)
    with RunningServer(settings) as other, signed_in_client(dashboard, admin_key) as client:
        cookie = client.cookies["eventtrack_admin"]
        assert httpx.get(f"{other.url}/admin/flags", cookies={"eventtrack_admin": cookie}).status_code == 200
        client.post("/admin/logout", data={"csrf_token": csrf_of(client.get("/admin/flags").text)})
        assert httpx.get(f"{other.url}/admin/flags", cookies={"eventtrack_admin": cookie}).status_code == 303


def test_head_on_a_dashboard_form_does_not_submit_it(dashboard, admin_key, db):
    with signed_in_client(dashboard, admin_key) as client:
        flag = create_flag(client, admin_key, {"key": "head-form", "rollout_percentage": 10})
        csrf = csrf_of(client.get("/admin/flags").text)
        form = {"csrf_token": csrf, "key": "head-form", "name": "changed by HEAD", "rollout_percentage": "99"}
        head = client.request("HEAD", f"/admin/flags/{flag['id']}", data=form)
        assert head.status_code == 200 and head.content == b""
        assert client.request("HEAD", f"/admin/flags/{flag['id']}/toggle", data={"csrf_token": csrf}).status_code == 405
    assert db.execute("SELECT name, rollout_percentage FROM feature_flags WHERE id = %s", (flag["id"],)).fetchone() == (
        "head-form",
        10,
    )


@pytest.mark.parametrize("page", ["/admin/events", "/admin/sessions"])
def test_dashboard_listings_refuse_a_crafted_cursor_with_a_400_page(dashboard, admin_key, page):
    with signed_in_client(dashboard, admin_key) as client:
        answer = client.get(page, params={"cursor": CRAFTED_CURSOR})
        assert answer.status_code == 400 and "cursor" in answer.text.lower()
        assert client.get(page).status_code == 200


@pytest.mark.parametrize(
    "path", ["/admin/flags/²", "/admin/flags/²/toggle", "/admin/experiments/١٢", "/admin/rejected?before=²"]
)
def test_ids_in_digits_other_than_ascii_are_not_found_not_a_server_error(dashboard, admin_key, db, path):
    with signed_in_client(dashboard, admin_key) as client:
        if path.endswith("/toggle"):
            csrf = csrf_of(client.get("/admin/flags").text)
            answer = client.post(path, data={"csrf_token": csrf, "active": "false"})
        else:
            answer = client.get(path)
        assert answer.status_code in (200, 404), answer.text[:300]
        replayed = client.post(
            "/admin/rejected/replay", data={"csrf_token": csrf_of(client.get("/admin/rejected").text), "id": "²"}
        )
        assert replayed.status_code == 303


def test_the_flag_form_is_titled_and_filled_for_a_new_flag_an_edit_and_a_refused_save(dashboard, admin_key, db):
    with signed_in_client(dashboard, admin_key) as client:
        flag = create_flag(client, admin_key, {"key": "form-title", "name": "Form title", "rollout_percentage": 10})
        new = client.get("/admin/flags/new")
        assert new.status_code == 200 and "<h1>New feature flag</h1>" in new.text
        edit = client.get(f"/admin/flags/{flag['id']}")
        assert edit.status_code == 200 and "<h1>Edit feature flag</h1>" in edit.text
        assert 'name="key" value="form-title"' in edit.text and 'name="name" value="Form title"' in edit.text
        refused = client.post(
            f"/admin/flags/{flag['id']}", data={"csrf_token": csrf_of(edit.text), "key": "Not A Slug"}
        )
        assert refused.status_code == 400 and "<h1>Edit feature flag</h1>" in refused.text
        assert 'name="key" value="Not A Slug"' in refused.text and 'aria-invalid="true"' in refused.text
        unknown = client.get(f"/admin/flags/{flag['id'] + 1000}")
        assert unknown.status_code == 404 and "No feature flag has this id." in unknown.text


def _blocks(lines: Iterator[str]) -> Iterator[list[str]]:
    """The message blocks of an event stream, as lists of lines."""
    block: list[str] = []
    for line in lines:
        if line:
            block.append(line)
        elif block:
            yield block
            block = []


def test_the_live_stream_needs_a_session_and_ends_when_it_is_signed_out(dashboard, admin_key, db):
    # No cookie (a Bearer key opens the JSON API only): the sign-in page, as for every page.
    for headers in ({}, {"Authorization": f"Bearer {admin_key}"}):
        refused = httpx.get(f"{dashboard.url}/admin/live/stream", headers=headers)
        assert refused.status_code == 303 and refused.headers["location"].startswith("/admin/login")

    with signed_in_client(dashboard, admin_key) as client:
        bad = client.get("/admin/live/stream", params={"filter": "plan=pro"})
        assert bad.status_code == 400 and "properties." in bad.text
        with client.stream(
            "GET", "/admin/live/stream", params={"event_type": "live_http"}, timeout=httpx.Timeout(30, read=10)
        ) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert "frame-ancestors 'none'" in stream.headers["content-security-policy"]
            blocks = _blocks(stream.iter_lines())
            assert next(blocks)[0] == "retry: 1000"  # connected
            for event_type in ("other", "live_http"):
                event = {"event": event_type, "distinct_id": "http-user", "uuid": str(uuid.uuid4())}
                assert client.post("/api/v1/analytics/capture/", json=event).status_code == 200
            shown = next(b for b in blocks if "event: event" in b)
            assert json.loads(shown[2].removeprefix("data: "))["uuid"] == event["uuid"]

            csrf = csrf_of(client.get("/admin/flags").text)
            assert client.post("/admin/logout", data={"csrf_token": csrf}).status_code == 303
            # Within a second or so: the close event, then the end of the answer.
            assert next(b for b in blocks if b[0].startswith("event:")) == [
                "event: close",
                'data: {"reason":"signed_out"}',
            ]
            assert list(blocks) == []
