"""Benchmarks (`make bench`): load the real ingest service and compare it with baselines."""
