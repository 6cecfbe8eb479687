{#-
  The body of a table dbt declares and a Dagster Python asset fills: no rows, one typed column per
  column of the model's yml (the one list of them, with the contract's types). Use it with
  config(materialized='incremental', on_schema_change='append_new_columns', full_refresh=false),
  so later runs add nothing and leave the asset's rows in place.
-#}
{% macro declared_table() -%}
select
{%- for column in model.columns.values() %}
    cast(null as {{ column.data_type }}) as {{ column.name }}{{ "," if not loop.last }}
{%- endfor %}
where false
{%- endmacro %}
