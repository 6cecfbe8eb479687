{#-
  The table analytics.agg_event_volume_anomalies, declared here and filled by the Dagster asset
  `analytics/agg_event_volume_anomalies` (orchestration/anomalies.py) after each hourly aggregate: dbt
  creates it, empty, from the columns of _marts__models.yml (macros/declared_table.sql). Built with
  agg_events_hourly (orchestration/dbt.py HOURLY_MODELS), so it exists before the asset's first run.
-#}
{{ config(materialized='incremental', on_schema_change='append_new_columns', full_refresh=false) }}

{{ declared_table() }}
