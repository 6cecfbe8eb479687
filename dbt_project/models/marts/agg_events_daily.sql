{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='day',
        on_schema_change='fail',
        full_refresh=false,
        post_hook=[
            "create index if not exists {{ this.name }}_day_idx on {{ this }} (day)",
            "create index if not exists {{ this.name }}_watermark_idx on {{ this }} (_ingest_seq_watermark)",
        ],
    )
}}
-- Same as agg_events_hourly per UTC day. Distinct counts are computed over the
-- day's events, never summed from hours.

with events as (
    select * from {{ ref('stg_eventtrack__events') }}
),

buckets as (
    {{ arrived_buckets('events', 'day') }}
    union
    {{ window_buckets('day') }}
),

-- Every event of the rebuilt days, and only those: within a day, derived
-- sessions depend only on the gaps between that day's own events.
events_in_scope as (
    select events.*
    from events
    where exists (
        select 1 from buckets
        where events.event_at >= buckets.bucket_start
          and events.event_at < buckets.bucket_start + interval '24 hours'
    )
),

sessionized as (
    {{ sessionize('events_in_scope') }}
),

bucketed as (
    select sessionized.*, date_trunc('day', event_at, 'UTC') as bucket_start
    from sessionized
)

select
    (bucket_start at time zone 'UTC')::date as day,
    event_type,
    app_version,
    os_name,
    count(distinct event_uuid) as event_count,
    count(distinct distinct_id) as unique_users,
    count(distinct device_id) as unique_devices,
    count(distinct session_key) as unique_sessions,
    {{ next_ingest_watermark('events') }} as _ingest_seq_watermark
from bucketed
group by bucket_start, event_type, app_version, os_name
