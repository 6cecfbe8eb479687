"""The tables dbt declares and Python assets fill (analytics.experiment_results, analytics.funnel_results):
dbt creates each typed table from its yml, the asset fills it, later dbt runs keep the asset's rows."""

from __future__ import annotations

from datetime import UTC, datetime

# model -> its primary key, as the yml declares it
DECLARED_TABLES = {
    "experiment_results": "PRIMARY KEY (experiment_id, variant)",
    "funnel_results": "PRIMARY KEY (funnel_id, step)",
}


def test_dbt_creates_the_results_table_from_its_yml_and_keeps_the_assets_rows(pipeline, db):
    from orchestration.dbt import dbt_models
    from orchestration.resources import dbt_model_columns, dbt_model_node, dbt_relation

    pipeline.materialize([dbt_models])
    for model, primary_key in DECLARED_TABLES.items():
        declared = dbt_model_node(model)["columns"]
        schema, table = dbt_relation(model).split(".")
        created = db.execute(
            """SELECT column_name, format_type(a.atttypid, a.atttypmod), a.attnotnull
               FROM information_schema.columns c
               JOIN pg_attribute a ON a.attrelid = format('%%I.%%I', c.table_schema, c.table_name)::regclass
                                  AND a.attname = c.column_name
               WHERE c.table_schema = %s AND c.table_name = %s
               ORDER BY c.ordinal_position""",
            (schema, table),
        ).fetchall()
        assert [name for name, _, _ in created] == dbt_model_columns(model)
        assert {name: kind for name, kind, _ in created} == {n: column["data_type"] for n, column in declared.items()}
        key_columns = primary_key.removeprefix("PRIMARY KEY (").removesuffix(")").split(", ")
        assert {name for name, _, not_null in created if not_null} == {
            n for n, column in declared.items() if any(c["type"] == "not_null" for c in column["constraints"])
        } | set(key_columns)
        (key,) = db.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'",
            (dbt_relation(model),),
        ).fetchone()
        assert key == primary_key

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
