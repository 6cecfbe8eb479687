-- Rebuilt whole daily, like agg_retention_weekly.
{{ retention_triangle('day') }}
