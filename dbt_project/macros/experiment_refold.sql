{#-
  Which experiments int_experiment_exposures recomputes from the whole window
  on an incremental run (the others only fold in the events that arrived since
  the last run).

  Each row keeps the md5 of its experiment's definition (the parts that decide
  which events count: flag, variant keys, goal, secondary events, window). An
  experiment is recomputed when it has no rows yet or its definition changed;
  rows of a changed or deleted experiment are deleted first (the pre-hook). A
  person's erasure (a request in aggregate_rebuilds since the last run)
  recomputes every experiment: the erased events are gone from raw, and the
  state must not keep what was derived from them (docs/privacy.md).
-#}

{% macro experiment_definition_hash(x) -%}
    md5(concat_ws(
        '|', {{ x }}.flag_key, jsonb_path_query_array({{ x }}.variants, '$[*].key')::text, {{ x }}.goal_event,
        {{ x }}.secondary_events::text, extract(epoch from {{ x }}.start_at)::text, extract(epoch from {{ x }}.end_at)::text
    ))::uuid
{%- endmacro %}

{#- {'recompute': ids to rebuild from the whole window, 'stale': ids whose rows go first}.
    Both empty on a first build (every event is then an arrival). -#}
{% macro experiments_to_refold() -%}
    {%- if not (execute and is_incremental()) -%}
        {{ return({'recompute': [], 'stale': []}) }}
    {%- endif -%}
    {%- set query -%}
        -- The experiments that have rows, by a skip scan of the (experiment_id, distinct_id) index.
        with recursive built (experiment_id) as (
            (select experiment_id from {{ this }} order by experiment_id limit 1)
            union all
            select (select t.experiment_id from {{ this }} t where t.experiment_id > b.experiment_id order by 1 limit 1)
            from built b
            where b.experiment_id is not null
        ),
        built_definitions as (
            select b.experiment_id,
                   (select t.definition_hash from {{ this }} t where t.experiment_id = b.experiment_id order by t.distinct_id limit 1) as definition_hash
            from built b
            where b.experiment_id is not null
        ),
        current_definitions as (
            select x.experiment_id, {{ experiment_definition_hash('x') }} as definition_hash
            from (select * from {{ ref('stg_eventtrack__experiments') }}) x
        ),
        erasure as (
            select exists (
                select 1 from {{ source('eventtrack', 'aggregate_rebuilds') }} where seq > {{ previous_ingest_watermark() }}
            ) as pending
        )
        select 'recompute' as action, c.experiment_id
        from current_definitions c
        left join built_definitions b on b.experiment_id = c.experiment_id
        where b.definition_hash is distinct from c.definition_hash or (select pending from erasure)
        union all
        select 'stale', b.experiment_id
        from built_definitions b
        left join current_definitions c on c.experiment_id = b.experiment_id
        where c.definition_hash is distinct from b.definition_hash or (select pending from erasure)
    {%- endset -%}
    {%- set rows = run_query(query).rows -%}
    {%- set out = {'recompute': [], 'stale': []} -%}
    {%- for row in rows -%}
        {%- do out[row[0]].append(row[1] | int) -%}
    {%- endfor -%}
    {{ return(out) }}
{%- endmacro %}

{#- A bigint[] literal of ids. -#}
{% macro bigint_array(ids) -%}
    '{ {{- ids | join(',') -}} }'::bigint[]
{%- endmacro %}

{#- pre_hook: delete the rows of the experiments listed as stale. A no-op on a first build. -#}
{% macro forget_stale_experiments() -%}
    {%- if is_incremental() -%}
    delete from {{ this }} where experiment_id = any({{ bigint_array(experiments_to_refold()['stale']) }})
    {%- endif -%}
{%- endmacro %}

{#- Before this model was incremental it was a plain table without the state columns: drop
    such a table (through the adapter, so dbt's relation cache knows) and build it anew. -#}
{% macro drop_if_not_incremental_state(required_column) -%}
    {%- if execute and model.resource_type == 'model' -%}
        {%- set existing = adapter.get_relation(this.database, this.schema, this.identifier) -%}
        {%- if existing is not none
              and required_column not in (adapter.get_columns_in_relation(existing) | map(attribute='name') | list) -%}
            {%- do log("dropping " ~ existing ~ ": built by an older version, without " ~ required_column, info=true) -%}
            {%- do adapter.drop_relation(existing) -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
