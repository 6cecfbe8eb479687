{#-
  Buckets whose raw rows were deleted (a person's erasure, docs/privacy.md).
  A deletion has no arrival, so the ingest service queues the touched UTC
  hours in `aggregate_rebuilds`, numbered from the events' own sequence: a
  request newer than the model's watermark makes arrived_buckets() rebuild its
  bucket, and a settled request advances the watermark like a settled event.
-#}

{#- Bucket starts (timestamptz, UTC-aligned) of the rebuilds requested since the last run. -#}
{% macro requested_buckets(grain) -%}
    select distinct date_trunc('{{ grain }}', bucket_at, 'UTC') as bucket_start
    from {{ source('eventtrack', 'aggregate_rebuilds') }}
    where seq > {{ previous_ingest_watermark() }}
{%- endmacro %}

{#- The newest settled request (same settle delay as events), or the previous watermark. -#}
{% macro requested_rebuilds_watermark() -%}
    coalesce(
        (
            select max(seq) from {{ source('eventtrack', 'aggregate_rebuilds') }}
            where seq > {{ previous_ingest_watermark() }}
              and requested_at < current_timestamp - interval '{{ var("arrival_settle_minutes") | int }} minutes'
        ),
        {{ previous_ingest_watermark() }}
    )
{%- endmacro %}

{#- pre_hook of the incremental aggregates: delete the rows of the requested
    buckets first. delete+insert only replaces the buckets the model returns,
    so a bucket whose last event was erased would otherwise keep its old rows.
    `days_after` widens each day to the later days whose rolling window covers
    it (WAU/MAU). A no-op on the first build. -#}
{% macro forget_requested_buckets(column, grain, days_after=0) -%}
    {%- if is_incremental() -%}
    delete from {{ this }}
    where {{ column }} in (
        select
            {%- if grain == 'day' %} (requested.bucket_start at time zone 'UTC')::date + offsets.n
            {%- else %} requested.bucket_start
            {%- endif %}
        from ({{ requested_buckets(grain) }}) as requested
        cross join generate_series(0, {{ days_after | int }}) as offsets (n)
    )
    {%- endif -%}
{%- endmacro %}
