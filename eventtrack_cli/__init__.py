"""The `eventtrack` command (main.py) and what only it needs (process supervision, the demo stream).

The top floor: it imports ingest_api/, orchestration/ and eventtrack/; nothing imports it (docs/architecture.md).
"""
