"""The settings -> dbt vars function every dbt invocation uses (the runner's views and the Dagster assets)."""

from __future__ import annotations

from eventtrack.settings import Settings
from orchestration.resources import EventtrackResource, settings_dbt_vars


def test_the_session_timeout_is_always_passed_and_the_return_event_only_when_set():
    assert settings_dbt_vars(Settings()) == {"session_timeout_minutes": Settings().session_timeout_minutes}
    assert settings_dbt_vars(Settings(session_timeout_minutes=45, retention_return_event="app_open")) == {
        "session_timeout_minutes": 45,
        "retention_return_event": "app_open",
    }


def test_the_dagster_resource_gives_the_same_vars_as_its_settings():
    settings = Settings(session_timeout_minutes=12, retention_return_event="purchase")
    assert settings_dbt_vars(EventtrackResource.from_settings(settings)) == settings_dbt_vars(settings)
