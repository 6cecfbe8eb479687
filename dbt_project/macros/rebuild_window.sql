{#-
  Which time buckets an incremental aggregate rebuilds, and the arrival
  watermark it records.

  Rows are selected by when they ARRIVED (events.ingest_seq), not by event
  time: every bucket that received a row since the previous run is rebuilt
  whole from the raw events, so late and duplicate events give exact results.
  The watermark is kept in the model's own `_ingest_seq_watermark` column.
  On a first build the previous watermark is 0 and every bucket is built.
-#}

{#- Read once before the model's query runs and inlined as a literal: with a
    literal, the planner uses the column statistics and the BRIN index on
    events.ingest_seq, so finding the new arrivals costs what arrived, not the
    history (a subquery there is planned with a default one-third selectivity,
    i.e. a scan of every partition). dbt unit tests mock `this` as a CTE that
    run_query cannot see, so there the subquery form is kept. -#}
{#- A model whose rows do not all change on every run keeps the watermark in a marker row and
    names it with the config `watermark_row` (a where clause), so no index on the column is needed. -#}
{% macro previous_ingest_watermark() -%}
    {%- set marker = config.get('watermark_row') -%}
    {%- set query = "select coalesce(max(_ingest_seq_watermark), 0) from " ~ this ~ (" where " ~ marker if marker else "") -%}
    {%- if not is_incremental() -%}
        0::bigint
    {%- elif execute and model.resource_type == 'model' -%}
        {{ run_query(query).columns[0].values()[0] | int }}::bigint
    {%- else -%}
        ({{ query }})
    {%- endif -%}
{%- endmacro %}

{#- The watermark this run records: the newest arrival older than the settle
    delay (younger rows may sit behind still-open transactions with lower
    ingest_seq values, so the next run reads them again), or the previous one. -#}
{% macro next_ingest_watermark(events) -%}
    greatest(
    coalesce(
        (
            select max(ingest_seq) from {{ events }}
            where ingest_seq > {{ previous_ingest_watermark() }}
              and received_at < current_timestamp - interval '{{ var("arrival_settle_minutes") | int }} minutes'
        ),
        {{ previous_ingest_watermark() }}
    ),
    {{ requested_rebuilds_watermark() }}
    )
{%- endmacro %}

{#- Start (timestamptz, UTC-aligned) of every `grain` bucket that received a row since the last run,
    or whose rows were deleted since (requested_rebuilds.sql). -#}
{% macro arrived_buckets(events, grain) -%}
    select distinct date_trunc('{{ grain }}', event_at, 'UTC') as bucket_start
    from {{ events }}
    where ingest_seq > {{ previous_ingest_watermark() }}
    union
    {{ requested_buckets(grain) }}
{%- endmacro %}

{#- Bucket starts of the half-open [min_ts, max_ts) window given as dbt vars
    (a Dagster partition), or no rows when the vars are unset. -#}
{% macro window_buckets(grain) -%}
    {%- set min_ts = var('min_ts', none) -%}
    {%- set max_ts = var('max_ts', none) -%}
    {%- if (min_ts is none) != (max_ts is none) -%}
        {{ exceptions.raise_compiler_error("set both vars min_ts and max_ts, or neither") }}
    {%- endif -%}
    {%- if min_ts is none -%}
    select null::timestamptz as bucket_start where false
    {%- else -%}
    select bucket_start_utc at time zone 'UTC' as bucket_start
    from generate_series(
        date_trunc('{{ grain }}', timestamptz '{{ min_ts }}' at time zone 'UTC'),
        (timestamptz '{{ max_ts }}' at time zone 'UTC') - interval '1 microsecond',
        interval '1 {{ grain }}'
    ) as bucket_start_utc
    {%- endif -%}
{%- endmacro %}
