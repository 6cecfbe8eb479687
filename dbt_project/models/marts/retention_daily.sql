-- Rebuilt whole daily, like retention_weekly.
{{ retention_triangle('day') }}
