-- Rebuilt whole daily: cohorts are defined by the first stored event, so any late
-- or pruned event can move a user between cohorts.
{{ retention_triangle('week') }}
