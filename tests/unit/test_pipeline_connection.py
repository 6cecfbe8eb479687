from eventtrack.settings import Settings
from orchestration.resources import dbt_connection_env, export_dbt_connection_env
from orchestration.runner import dagster_database_url


def test_embedded_socket_url_gives_socket_dir_as_dbt_host():
    assert dbt_connection_env("postgresql://postgres:@/eventtrack?host=/tmp/x/pg") == {
        "EVENTTRACK_DB_HOST": "/tmp/x/pg",
        "EVENTTRACK_DB_USER": "postgres",
        "EVENTTRACK_DB_NAME": "eventtrack",
    }


def test_parts_the_url_leaves_out_are_left_to_the_profiles_defaults():
    """dbt_project/profiles.yml holds the only defaults (no second copy here that could disagree with it)."""
    assert dbt_connection_env("postgresql://") == {}
    assert dbt_connection_env("postgresql://bob@db.example") == {
        "EVENTTRACK_DB_HOST": "db.example",
        "EVENTTRACK_DB_USER": "bob",
    }


def test_tcp_url_with_escaped_password_port_and_sslmode():
    env = dbt_connection_env("postgresql://bob:s%40cret@db.example:6543/app?sslmode=require")
    assert env["EVENTTRACK_DB_HOST"] == "db.example"
    assert env["EVENTTRACK_DB_PORT"] == "6543"
    assert env["EVENTTRACK_DB_USER"] == "bob"
    assert env["EVENTTRACK_DB_PASSWORD"] == "s@cret"
    assert env["EVENTTRACK_DB_NAME"] == "app"
    assert env["EVENTTRACK_DB_SSLMODE"] == "require"


def test_export_keeps_variables_an_operator_already_set():
    environ = {"EVENTTRACK_DB_HOST": "elsewhere"}
    export_dbt_connection_env(Settings(database_url="postgresql://u:p@h:1/d"), environ)
    assert environ["EVENTTRACK_DB_HOST"] == "elsewhere"
    assert environ["EVENTTRACK_DB_NAME"] == "d"


def test_dagster_gets_its_own_database_on_the_same_server():
    assert dagster_database_url("postgresql://postgres:@/eventtrack?host=/tmp/x/pg") == (
        "postgresql+psycopg2://postgres:@/dagster?host=/tmp/x/pg"
    )
    assert dagster_database_url("postgresql://u:p@h:5433/app?sslmode=require") == (
        "postgresql+psycopg2://u:p@h:5433/dagster?sslmode=require"
    )
