{#-
  The table analytics.funnel_results, declared here and filled by the Dagster asset
  `analytics/funnel_results` (orchestration/funnels.py) with the live funnel endpoint's
  query (eventtrack/analytics/funnels.py): dbt creates it, empty, from the columns of
  _marts__models.yml (macros/declared_table.sql).
-#}
{{ config(materialized='incremental', on_schema_change='append_new_columns', full_refresh=false) }}

{{ declared_table() }}
