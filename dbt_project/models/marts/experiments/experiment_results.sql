{#-
  The table analytics.experiment_results, declared here and filled by the Dagster
  asset `analytics/experiment_results` (orchestration/experiments.py): dbt creates
  it, empty, from the columns of _experiments__models.yml (the one list of them);
  later runs add nothing and leave the asset's rows in place.
-#}
{{ config(materialized='incremental', on_schema_change='append_new_columns', full_refresh=false) }}

select
{%- for column in model.columns.values() %}
    cast(null as {{ column.data_type }}) as {{ column.name }}{{ "," if not loop.last }}
{%- endfor %}
where false
