"""The dbt project's conventions (issue 14). Marts are named fct_ (one row per thing that happened) or agg_
(aggregates); the old names stay readable as deprecated views, and an install from before the renames keeps
its tables. Every staging and intermediate model has data tests."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

# Old name -> new name of the renamed marts (each old name is now a view in marts/deprecated).
RENAMED = {
    "active_users_daily": "agg_active_users_daily",
    "retention_daily": "agg_retention_daily",
    "retention_weekly": "agg_retention_weekly",
    "funnel_results": "agg_funnel_results",
    "experiment_results": "agg_experiment_results",
    "experiment_variant_counts": "agg_experiment_variant_counts",
}


def relkind(db, name: str) -> str | None:
    row = db.execute(
        "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'analytics' AND c.relname = %s",
        (name,),
    ).fetchone()
    return row[0] if row else None


def indexes(db, table: str) -> set[str]:
    rows = db.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'analytics' AND tablename = %s", (table,))
    return {name for (name,) in rows}


def test_every_mart_is_fct_or_agg_and_the_old_names_are_deprecated_views_of_them(dbt_env):
    from orchestration.resources import dbt_manifest

    models = [n for n in dbt_manifest()["nodes"].values() if n["resource_type"] == "model"]
    marts = {n["name"] for n in models if n["fqn"][1] == "marts" and "deprecated" not in n["fqn"]}
    assert marts and all(name.startswith(("fct_", "agg_")) for name in marts), marts
    deprecated = {n["name"]: n for n in models if "deprecated" in n["fqn"]}
    assert {name: n["depends_on"]["nodes"] for name, n in deprecated.items()} == {
        old: [f"model.eventtrack.{new}"] for old, new in RENAMED.items()
    }
    assert {n["config"]["materialized"] for n in deprecated.values()} == {"view"}
    assert all(n["description"].startswith("Deprecated; use analytics.") for n in deprecated.values())


def test_an_install_from_before_the_renames_keeps_its_tables(pipeline, db, database_url):
    """Its tables under the old names (active_users_daily is incremental: its days are not all rebuilt)
    are renamed at start-up with their indexes, and the old names read the same rows."""
    from eventtrack.settings import Settings
    from orchestration.dbt import dbt_models
    from orchestration.runner import build_dbt_views
    from tests.integration.test_pipeline import insert_events, random_events

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day = today - timedelta(days=2)
    insert_events(db, random_events(random.Random(5), day, 24, 50, received_at=today - timedelta(hours=1)))
    pipeline.materialize([dbt_models])
    pipeline.materialize([pipeline.daily_aggregates], partition_key=day.strftime("%Y-%m-%d"))
    for old, new in RENAMED.items():  # the deprecated views read their table
        assert relkind(db, old) == "v", old
        assert db.execute(
            f"SELECT count(*) FROM (TABLE analytics.{old} EXCEPT ALL TABLE analytics.{new}) d"
        ).fetchone() == (0,)

    # The layout before the renames: the tables under their old names, with their indexes' old names.
    for old, new in RENAMED.items():
        db.execute(f"DROP VIEW analytics.{old}")
        if old != "funnel_results":  # a mart then; its table is now declared differently (see the macro)
            db.execute(f"ALTER TABLE analytics.{new} RENAME TO {old}")
            for index in indexes(db, old):
                db.execute(f"ALTER INDEX analytics.{index} RENAME TO {index.removeprefix('agg_')}")
    # A day only the old table knows (its events are gone: not rebuilt by the next runs).
    db.execute("INSERT INTO analytics.active_users_daily (day, dau, wau, mau) VALUES ('2020-01-01', 42, 42, 42)")
    old_rows = db.execute("SELECT * FROM analytics.active_users_daily ORDER BY day").fetchall()
    assert relkind(db, "agg_active_users_daily") is None

    build_dbt_views(Settings(database_url=database_url))  # `eventtrack up`, before the schedules start
    assert relkind(db, "agg_active_users_daily") == "r" and relkind(db, "active_users_daily") == "v"
    assert indexes(db, "agg_active_users_daily") == {
        "agg_active_users_daily_day_idx",
        "agg_active_users_daily_watermark_idx",
    }
    assert db.execute("SELECT * FROM analytics.agg_active_users_daily ORDER BY day").fetchall() == old_rows
    assert db.execute("SELECT * FROM analytics.active_users_daily ORDER BY day").fetchall() == old_rows
    for old in ("retention_daily", "retention_weekly", "experiment_results", "experiment_variant_counts"):
        assert (relkind(db, f"agg_{old}"), relkind(db, old)) == ("r", "v"), old

    # The next daily runs rebuild what they rebuild and keep the rest; the old names stay views.
    pipeline.materialize([dbt_models])
    pipeline.materialize([pipeline.daily_aggregates], partition_key=day.strftime("%Y-%m-%d"))
    assert db.execute(
        "SELECT dau FROM analytics.active_users_daily WHERE day = %s", (date(2020, 1, 1),)
    ).fetchone() == (42,)
    assert {old: relkind(db, old) for old in RENAMED} == dict.fromkeys(RENAMED, "v")
    build_dbt_views(Settings(database_url=database_url))  # and once renamed, start-up changes nothing
    assert db.execute("SELECT * FROM analytics.agg_active_users_daily WHERE day = '2020-01-01'").fetchone() is not None


def test_every_staging_and_intermediate_model_has_data_tests(dbt_env):
    from orchestration.resources import dbt_manifest

    nodes = dbt_manifest()["nodes"].values()
    tested = {parent for n in nodes if n["resource_type"] == "test" for parent in n["depends_on"]["nodes"]}
    layers = [n for n in nodes if n["resource_type"] == "model" and n["fqn"][1] in ("staging", "intermediate")]
    assert {"stg_eventtrack__events", "int_experiment_exposures"} <= {n["name"] for n in layers}
    assert [n["name"] for n in layers if n["unique_id"] not in tested] == []
