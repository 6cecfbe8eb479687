"""eventtrack ingest service: HTTP capture API writing raw events to Postgres."""
