"""The ground floor every other package may use: settings, the database and its embedded server, migrations
and the raw schema, event partitions, time parsing, ids, client IP truncation and the error catalogue.

It imports nothing from ingest_api/, orchestration/ or eventtrack_cli/, and nothing HTTP (docs/architecture.md).
"""
