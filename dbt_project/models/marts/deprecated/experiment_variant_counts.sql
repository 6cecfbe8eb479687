-- Deprecated: the old name of agg_experiment_variant_counts (see _deprecated__models.yml).
select * from {{ ref('agg_experiment_variant_counts') }}
