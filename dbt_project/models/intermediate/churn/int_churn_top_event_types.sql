-- The five most frequent event types over every event (ties: by name): the event types whose
-- daily counts int_user_activity_daily keeps as top_type_1_events .. top_type_5_events.
{{ config(materialized='table') }}

with ranked as (
    select
        event_type,
        count(*) as events,
        row_number() over (order by count(*) desc, event_type) as type_rank
    from {{ ref('stg_eventtrack__events') }}
    group by event_type
)

select type_rank::integer as type_rank, event_type, events
from ranked
where type_rank <= 5
