# The two commands of the README: `make run` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install js bench bench-pipeline bench-soak bench-spike bench-stream bench-analytics bench-clickhouse bench-experiments bench-churn bench-schema bench-retention clean

# uv installs the ~160 packages in a third of pip's time (measured on a fresh clone here: 21 s against 56 s,
# bytecode compiled by both), which was most of a fresh clone's `make test` set-up. --compile-bytecode as pip does: where
# PYTHONDONTWRITEBYTECODE is set (CI here) nothing would ever write the .pyc files, and every process (each dbt,
# Dagster and API process of the suite) would compile dagster, dbt and the rest from source again.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BIN)/uv: | $(BIN)/python
	$(BIN)/pip install --quiet 'uv>=0.9'

# Reinstall when the dependencies change.
$(STAMP): pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The JavaScript OFREP providers' test package (tests/js, run by tests/e2e/test_ofrep_providers.py):
# installed from its lockfile when node_modules is missing or the lockfile changed.
JS_STAMP := tests/js/node_modules/.package-lock.json
$(JS_STAMP): tests/js/package-lock.json
	npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

js: $(JS_STAMP)

run: install
	$(BIN)/eventtrack up

# The dashboard's browser tests drive Debian's chromium (installed when missing).
# The tests run on PYTEST_WORKERS pytest-xdist workers, each with its own embedded Postgres and servers. A test
# file is one unit of work (its tests in file order, module fixtures once); the files are handed out in collection
# order, so the many short unit test files fill in at the end. PYTEST_WORKERS=0 runs everything in one process.
# Two: three were measured no faster on these two cores (2026-12-03, quiet: 7:07 with two; 6:41 and 7:10 with three).
PYTEST_WORKERS ?= 2
test: install js
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# wrk is the load generator (C, not Python-bound); installed from Debian's packages when missing.
bench: install
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench.run_ingest
	$(BIN)/python -m bench.run_flags

# msgspec, pydantic and today's validator reading the same bodies: a CPU microbenchmark of a few seconds.
bench-schema: install
	$(BIN)/python -m bench.schema_libs

# Dagster + dbt on 1M and 10M synthetic events (BENCH_ROWS_SMALL / BENCH_ROWS_LARGE).
bench-pipeline: install
	$(BIN)/python -m bench.run_pipeline

# 5 minutes of the batch load with the API's RSS sampled every 5 s (SOAK_SECONDS to change).
bench-soak: install
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench.run_soak

# 10x the sustained batch capacity for 30 s from 2000 simulated PostHog SDK clients that retry as the SDKs do:
# drain time, every event stored exactly once, the API's RSS bounded (BENCH_SPIKE_* to change; ~10 min here).
bench-spike: install
	$(BIN)/python -m bench.run_spike

# Webhook delivery (issue 17): capture-to-delivery p50/p99 at 2,000 events/s for 30 s (API, `eventtrack deliver`
# and a receiver, every acked event checked delivered), then the batch capture throughput without and with an
# active destination, A/B rounds (BENCH_STREAM_*; ~3 min here; docs/performance.md "Streaming").
bench-stream: install
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench.run_stream

# The funnels endpoint on 10M synthetic events (BENCH_FUNNEL_ROWS), median of BENCH_FUNNEL_RUNS requests.
bench-analytics: install
	$(BIN)/python -m bench.run_funnels

# Postgres vs ClickHouse (chDB) on the same 10M events, the load rate, then ClickHouse alone at 100M (BENCH_CH_*).
# Retention's partition drop against DELETE + VACUUM on a day of BENCH_RETENTION_ROWS (1M) events.
bench-retention: install
	$(BIN)/python -m bench.run_retention_drop

bench-clickhouse: install
	$(BIN)/python -m bench.run_clickhouse

# Experiment results refresh (dbt counts + statistics asset) with 1M exposed users (BENCH_EXPOSED_USERS).
bench-experiments: install
	$(BIN)/python -m bench.run_experiments

bench-churn: install
	$(BIN)/python -m bench.run_churn

clean:
	rm -rf $(VENV) .pytest_cache tests/js/node_modules
