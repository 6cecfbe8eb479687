{#-
  The table analytics.experiment_results, declared here and filled by the Dagster
  asset `analytics/experiment_results` (orchestration/experiments.py): dbt creates
  it, empty, from the columns of _experiments__models.yml (macros/declared_table.sql).
-#}
{{ config(materialized='incremental', on_schema_change='append_new_columns', full_refresh=false) }}

{{ declared_table() }}
