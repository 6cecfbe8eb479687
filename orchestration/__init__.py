"""The Dagster code location: when and what runs; dbt_project/ says how."""
