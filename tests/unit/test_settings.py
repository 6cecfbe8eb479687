"""Settings: every default written once (the field), every variable read through the field's metadata."""

from __future__ import annotations

from dataclasses import fields
from datetime import date
from pathlib import Path

import pytest

from eventtrack.settings import Settings
from orchestration.resources import EventtrackResource


def test_no_environment_gives_the_field_defaults():
    assert Settings.from_env({}) == Settings(data_dir=Path(".data").resolve())


def test_blank_variables_keep_the_defaults():
    blank = {f.metadata["env"]: "  " for f in fields(Settings) if "env" in f.metadata}
    assert Settings.from_env(blank) == Settings.from_env({})


def test_each_variable_is_parsed_into_its_field():
    settings = Settings.from_env(
        {
            "API_PORT": "9001",
            "COMMIT_TIMEOUT_SECONDS": "1.5",
            "CORS_ALLOW_ORIGINS": "https://a.example, https://b.example,",
            "CLIENT_IP_TRUNCATION": "none",
            "STORE_CLIENT_IP": "on",
            "WRITE_KEY": " wk_1 ",
            "LOG_LEVEL": "debug",
            "PARTITIONS_START_DATE": "2026-01-02",
            "DASHBOARD_COOKIE_SECURE": "yes",
            "EVENTTRACK_DATA_DIR": "somewhere",
            "RETENTION_RETURN_EVENT": "app_open",
        }
    )
    assert settings.api_port == 9001
    assert settings.commit_timeout_seconds == 1.5
    assert settings.cors_allow_origins == ("https://a.example", "https://b.example")
    assert settings.client_ip_prefixes == (32, 128)
    assert settings.store_client_ip is True
    assert settings.write_key == "wk_1"
    assert settings.log_level == "DEBUG"
    assert settings.partitions_start_date == date(2026, 1, 2)
    assert settings.dashboard_cookie_secure is True
    assert settings.data_dir == Path("somewhere").resolve()
    assert settings.retention_return_event == "app_open"


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("API_PORT", "eighty", "API_PORT must be an integer"),
        ("RATE_LIMIT_PER_SECOND", "fast", "RATE_LIMIT_PER_SECOND must be a number"),
        ("STORE_CLIENT_IP", "maybe", "STORE_CLIENT_IP must be true or false"),
        ("PARTITIONS_START_DATE", "02/01/2026", "PARTITIONS_START_DATE must be a date"),
        ("CLIENT_IP_TRUNCATION", "24", "CLIENT_IP_TRUNCATION must be"),
    ],
)
def test_a_bad_value_names_its_variable(variable, value, message):
    with pytest.raises(ValueError, match=message):
        Settings.from_env({variable: value})


def test_the_pipeline_resource_defaults_are_the_settings_defaults():
    resource = EventtrackResource(database_url="")
    assert resource == EventtrackResource.from_settings(Settings())


def test_the_pipeline_resource_carries_each_of_its_settings():
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://u@h/db",
            "SESSION_TIMEOUT_MINUTES": "45",
            "EVENTS_RETENTION_DAYS": "400",
            "RETENTION_RETURN_EVENT": "purchase",
        }
    )
    resource = EventtrackResource.from_settings(settings)
    assert {name: getattr(resource, name) for name in EventtrackResource.model_fields} == {
        name: getattr(settings, name) for name in EventtrackResource.model_fields
    }
    assert (resource.session_timeout_minutes, resource.events_retention_days) == (45, 400)
