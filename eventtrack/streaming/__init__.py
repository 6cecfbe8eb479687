"""Real-time streaming (docs/operations.md "Streaming"): the arrival horizon, reading events after a cursor,
webhook destinations and their delivery worker. Used by the API's live tail and admin routes, and run as
`eventtrack deliver` (supervised by `eventtrack up`)."""

import sys


def deliver_command() -> list[str]:
    """The delivery worker's command line, run by `eventtrack up` and the streaming benchmark."""
    return [sys.executable, "-m", "eventtrack_cli.main", "deliver"]
