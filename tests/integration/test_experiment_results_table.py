"""analytics.experiment_results is a dbt model: dbt creates the typed table from its yml, the Python asset fills it."""

from __future__ import annotations

from datetime import UTC, datetime


def test_dbt_creates_the_results_table_from_its_yml_and_keeps_the_assets_rows(pipeline, db):
    from orchestration.dbt import dbt_models
    from orchestration.resources import dbt_manifest, dbt_model_columns

    pipeline.materialize([dbt_models])
    declared = next(
        n
        for n in dbt_manifest()["nodes"].values()
        if n["resource_type"] == "model" and n["name"] == "experiment_results"
    )["columns"]
    created = db.execute(
        """SELECT column_name, format_type(a.atttypid, a.atttypmod), a.attnotnull
           FROM information_schema.columns c
           JOIN pg_attribute a ON a.attrelid = 'analytics.experiment_results'::regclass AND a.attname = c.column_name
           WHERE c.table_schema = 'analytics' AND c.table_name = 'experiment_results'
           ORDER BY c.ordinal_position"""
    ).fetchall()
    assert [name for name, _, _ in created] == dbt_model_columns("experiment_results")
    assert {name: kind for name, kind, _ in created} == {name: column["data_type"] for name, column in declared.items()}
    assert {name for name, _, not_null in created if not_null} == {
        name for name, column in declared.items() if any(c["type"] == "not_null" for c in column["constraints"])
    } | {"experiment_id", "variant"}
    (key,) = db.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'analytics.experiment_results'::regclass"
        " AND contype = 'p'"
    ).fetchone()
    assert key == "PRIMARY KEY (experiment_id, variant)"

    # The asset's rows survive the next dbt build (the model only creates the table), and dbt's tests check them.
    db.execute(
        """INSERT INTO analytics.experiment_results
           (experiment_id, variant, is_control, exposures, conversions, srm_warning, multi_exposure_users,
            secondary_metrics, computed_at)
           VALUES (1, 'a', true, 10, 2, false, 0, '{}', %s)""",
        (datetime(2026, 11, 25, tzinfo=UTC),),
    )
    result = pipeline.materialize([dbt_models])
    assert db.execute("SELECT variant, exposures FROM analytics.experiment_results").fetchall() == [("a", 10)]
    checks = {
        check.check_name: check.passed
        for check in result.get_asset_check_evaluations()
        if check.asset_key.path == ["analytics", "experiment_results_table"]
    }
    assert checks and all(checks.values()), checks
