{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='day',
        on_schema_change='fail',
        full_refresh=false,
        pre_hook="{{ forget_requested_buckets('day', 'day') }}",
        post_hook=[
            "create index if not exists {{ this.name }}_day_idx on {{ this }} (day)",
            "create index if not exists {{ this.name }}_watermark_idx on {{ this }} (_ingest_seq_watermark)",
        ],
    )
}}
-- Same as agg_events_hourly per UTC day. Distinct counts are computed over the
-- day's events, never summed from hours.

{{ event_aggregates('day') }}
