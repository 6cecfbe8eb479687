{#-
  Adds session columns to a set of events (`relation`: a ref or CTE name with
  the staging columns).

  Events that carry a session_id keep it. The others are grouped per
  (distinct_id, device_id) by inactivity: an event starts a new derived session
  when the previous one of the same user and device is more than
  `session_timeout_minutes` older (a gap of exactly the timeout continues it).
  The derived session key is a hash of user, device and the session's first
  event time, so it is stable from run to run.

  Applied to the events of whole time buckets only (as the incremental
  aggregates do), the keys still group each bucket's events exactly as a run
  over all events would: two events of a bucket have no event between them
  outside it. Only a key's value can differ, for a session that began before.
-#}
{% macro sessionize(relation) %}
{%- set timeout = session_timeout_minutes() -%}
select
    flagged.*,
    case
        when flagged.session_id is not null then flagged.session_id
        else 'derived-' || md5(
            flagged.distinct_id || '|' || coalesce(flagged.device_id, '') || '|'
            || ((extract(epoch from flagged.session_started_at) * 1000000)::bigint)::text
        )
    end as session_key
from (
    select
        gaps.*,
        case
            when gaps.session_id is not null then null
            else max(gaps.event_at) filter (where gaps.is_session_start) over (
                partition by gaps.distinct_id, coalesce(gaps.device_id, '')
                order by gaps.event_at, gaps.ingest_seq
                rows between unbounded preceding and current row
            )
        end as session_started_at
    from (
        select
            e.*,
            e.session_id is null and (
                lag(e.event_at) over by_device is null
                or e.event_at - lag(e.event_at) over by_device > interval '{{ timeout }} minutes'
            ) as is_session_start
        from {{ relation }} as e
        window by_device as (
            partition by e.session_id is null, e.distinct_id, coalesce(e.device_id, '')
            order by e.event_at, e.ingest_seq
        )
    ) as gaps
) as flagged
{% endmacro %}
