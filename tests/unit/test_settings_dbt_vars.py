"""The settings -> dbt vars function every dbt invocation uses (the runner's views and the Dagster assets)."""

from __future__ import annotations

from eventtrack.settings import Settings
from orchestration.resources import EventtrackResource, settings_dbt_vars


def test_the_session_timeout_settle_delay_and_churn_settings_are_always_passed_the_return_event_only_when_set():
    assert settings_dbt_vars(Settings()) == {
        "session_timeout_minutes": Settings().session_timeout_minutes,
        "arrival_settle_minutes": Settings().arrival_settle_minutes,
        "churn_horizon_days": 14,
        "churn_cutoff_weeks": 8,
    }
    assert settings_dbt_vars(
        Settings(
            session_timeout_minutes=45,
            arrival_settle_minutes=2,
            retention_return_event="app_open",
            churn_horizon_days=30,
            churn_cutoff_weeks=12,
        )
    ) == {
        "session_timeout_minutes": 45,
        "arrival_settle_minutes": 2,
        "retention_return_event": "app_open",
        "churn_horizon_days": 30,
        "churn_cutoff_weeks": 12,
    }


def test_the_dagster_resource_gives_the_same_vars_as_its_settings():
    settings = Settings(
        session_timeout_minutes=12, arrival_settle_minutes=3, retention_return_event="purchase", churn_horizon_days=21
    )
    assert settings_dbt_vars(EventtrackResource.from_settings(settings)) == settings_dbt_vars(settings)
