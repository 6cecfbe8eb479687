{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='hour',
        on_schema_change='fail',
        full_refresh=false,
        pre_hook="{{ forget_requested_buckets('hour', 'hour') }}",
        post_hook=[
            "create index if not exists {{ this.name }}_hour_idx on {{ this }} (hour)",
            "create index if not exists {{ this.name }}_watermark_idx on {{ this }} (_ingest_seq_watermark)",
        ],
    )
}}
-- Rebuilds whole UTC hours: those that received events since the last run
-- (late data included) and those of the [min_ts, max_ts) partition window.
-- full_refresh=false: raw events expire after EVENTS_RETENTION_DAYS, the
-- aggregates are kept longer, so a rebuild from raw would lose history.

{{ event_aggregates('hour') }}
