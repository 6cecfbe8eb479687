{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='hour',
        on_schema_change='fail',
        full_refresh=false,
        post_hook=[
            "create index if not exists {{ this.name }}_hour_idx on {{ this }} (hour)",
            "create index if not exists {{ this.name }}_watermark_idx on {{ this }} (_ingest_seq_watermark)",
        ],
    )
}}
-- Rebuilds whole hours: those that received events since the last run
-- (late data included) and those of the [min_ts, max_ts) partition window.
-- full_refresh=false: raw events expire after EVENTS_RETENTION_DAYS, the
-- aggregates are kept longer, so a rebuild from raw would lose history.

with events as (
    select * from {{ ref('stg_eventtrack__events') }}
),

buckets as (
    {{ arrived_buckets('events', 'hour') }}
    union
    {{ window_buckets('hour') }}
),

-- Every event of the rebuilt hours, and only those: within an hour, derived
-- sessions depend only on the gaps between that hour's own events.
events_in_scope as (
    select events.*
    from events
    where exists (
        select 1 from buckets
        where events.event_at >= buckets.bucket_start
          and events.event_at < buckets.bucket_start + interval '1 hour'
    )
),

sessionized as (
    {{ sessionize('events_in_scope') }}
),

bucketed as (
    select sessionized.*, date_trunc('hour', event_at, 'UTC') as hour
    from sessionized
)

select
    hour,
    event_type,
    app_version,
    os_name,
    count(distinct event_uuid) as event_count,
    count(distinct distinct_id) as unique_users,
    count(distinct device_id) as unique_devices,
    count(distinct session_key) as unique_sessions,
    {{ next_ingest_watermark('events') }} as _ingest_seq_watermark
from bucketed
group by hour, event_type, app_version, os_name
