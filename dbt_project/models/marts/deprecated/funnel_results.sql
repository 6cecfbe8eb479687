-- Deprecated: the old name of agg_funnel_results (see _deprecated__models.yml).
select * from {{ ref('agg_funnel_results') }}
