{#-
  The table analytics.user_churn_scores, declared here and filled by the Dagster asset
  `analytics/user_churn_scores` (orchestration/churn.py): dbt creates it, empty, from the columns of
  _churn__models.yml (macros/declared_table.sql).
-#}
{{ config(materialized='incremental', on_schema_change='append_new_columns', full_refresh=false, alias='user_churn_scores') }}

{{ declared_table() }}
