{#-
  The table analytics.churn_models: one row per model the Dagster asset `analytics/user_churn_scores`
  (orchestration/churn.py) trained, appended at each run; declared here, created empty by dbt.
-#}
{{ config(materialized='incremental', on_schema_change='append_new_columns', full_refresh=false, alias='churn_models') }}

{{ declared_table() }}
