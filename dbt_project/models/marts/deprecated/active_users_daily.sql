-- Deprecated: the old name of agg_active_users_daily (see _deprecated__models.yml).
select * from {{ ref('agg_active_users_daily') }}
