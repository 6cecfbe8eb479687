{#-
  The body of agg_events_hourly and agg_events_daily: event counts per
  (bucket, event_type, app_version, os_name) for every `grain` bucket to
  rebuild (see rebuild_window.sql), from all of the bucket's events.

  Only the rebuilt buckets' events are read: within a bucket, derived
  sessions depend only on the gaps between that bucket's own events (see
  sessionize.sql). Distinct counts are per bucket, never summed.
-#}
{% macro event_aggregates(grain) %}
{%- set span = {'hour': "interval '1 hour'", 'day': "interval '24 hours'"}[grain] -%}
with events as (
    select * from {{ ref('stg_eventtrack__events') }}
),

buckets as (
    {{ arrived_buckets('events', grain) }}
    union
    {{ window_buckets(grain) }}
),

-- The min/max bounds are InitPlans, so Postgres prunes the event partitions
-- outside the rebuilt range when the query starts: a run costs what the new
-- data touches, not the whole history. The bucket test is an equality (buckets
-- are UTC-aligned), so it is a hash join: a range test made a nested loop over
-- events x buckets, minutes for a window of months (catch-up, a backfill).
events_in_scope as (
    select events.*
    from events
    where events.event_at >= (select min(bucket_start) from buckets)
      and events.event_at < (select max(bucket_start) from buckets) + {{ span }}
      and date_trunc('{{ grain }}', events.event_at, 'UTC') in (select bucket_start from buckets)
),

sessionized as (
    {{ sessionize('events_in_scope') }}
),

bucketed as (
    select sessionized.*, date_trunc('{{ grain }}', event_at, 'UTC') as bucket_start
    from sessionized
)

select
    {% if grain == 'day' -%}
    (bucket_start at time zone 'UTC')::date as day,
    {%- else -%}
    bucket_start as hour,
    {%- endif %}
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
{% endmacro %}
