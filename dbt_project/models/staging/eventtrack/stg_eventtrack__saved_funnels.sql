select
    id as funnel_id,
    name as funnel_name,
    steps,
    window_seconds,
    range_days
from {{ source('eventtrack', 'saved_funnels') }}
