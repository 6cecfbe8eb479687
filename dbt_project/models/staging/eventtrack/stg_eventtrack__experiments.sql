select
    id as experiment_id,
    name as experiment_name,
    flag_key,
    control_variant,
    goal_event,
    secondary_events,
    variants,
    start_at,
    end_at
from {{ source('eventtrack', 'experiments') }}
