{#-
  incremental_strategy='upsert': one INSERT ... ON CONFLICT DO UPDATE on the
  model's unique key (which needs a unique index on it, created by the model's
  post-hook). For a model that rewrites a small share of a large table each
  run: every new row finds its old one through the index, where delete+insert
  first joins the whole table with the new rows.
-#}
{% macro get_incremental_upsert_sql(arg_dict) -%}
    {%- set keys = arg_dict["unique_key"] if arg_dict["unique_key"] is not string else [arg_dict["unique_key"]] -%}
    {%- set columns = arg_dict["dest_columns"] -%}
    insert into {{ arg_dict["target_relation"] }} ({{ columns | map(attribute="quoted") | join(", ") }})
    select {{ columns | map(attribute="quoted") | join(", ") }} from {{ arg_dict["temp_relation"] }}
    on conflict ({{ keys | join(", ") }}) do update set
    {%- for column in columns if column.name not in keys %}
        {{ column.quoted }} = excluded.{{ column.quoted }}{{ "," if not loop.last }}
    {%- endfor %}
{%- endmacro %}
