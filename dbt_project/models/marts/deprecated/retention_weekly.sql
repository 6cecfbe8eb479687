-- Deprecated: the old name of agg_retention_weekly (see _deprecated__models.yml).
select * from {{ ref('agg_retention_weekly') }}
