"""Which writes the group-commit sink takes into its queue, and which it refuses at once (503).

A request waits for the rows queued before it and for the group being written. When that is more than the
writer commits within the commit timeout, the request is answered 503 although its rows stay queued and
are committed later: the client resends them and the writer commits them a second time (deduplicated, but
at full cost); under a spike that wasted work becomes most of the writer's time. So the queue is bounded in
time as well as in rows: it holds at most `max_queued_rows`, and at most what the writer commits in a
quarter of the commit timeout at the pace of its last groups (a row then waits about half the timeout at
worst: the group in flight, then the queue).

A request can also be refused before its body is read, which costs ~20x less than parsing and validating
it first; its size is not known yet, so the size of recent requests stands for it.

Pure: the sink tells it what it commits and what is asked of it.
"""

from __future__ import annotations

from collections import deque

# The pace is that of the last few groups: it follows a database that slows down within a few commits.
PACE_GROUPS = 8
QUEUE_SHARE_OF_TIMEOUT = 0.25
# How fast the typical request size follows the requests (an exponential moving average).
SIZE_SMOOTHING = 0.1


class Admission:
    def __init__(self, max_queued_rows: int, commit_timeout: float, writers: int = 1):
        self.max_queued_rows = max_queued_rows
        self.commit_timeout = commit_timeout
        # Writers commit side by side: the queue drains at about their number times one writer's pace (at
        # most that: when they share a bottleneck the queue then waits up to half the timeout, still within it).
        self.writers = writers
        self._groups: deque[tuple[int, float]] = deque(maxlen=PACE_GROUPS)
        self._request_rows = 1.0
        self._limit = max_queued_rows  # queue_limit(), worked out once per commit rather than per request

    def committed(self, rows: int, seconds: float) -> None:
        """A group of `rows` was written and committed in `seconds`."""
        if rows > 0 and seconds > 0:
            self._groups.append((rows, seconds))
            pace = self.rows_per_second()
            drained = self.writers * pace * self.commit_timeout * QUEUE_SHARE_OF_TIMEOUT
            self._limit = min(self.max_queued_rows, int(drained))

    def requested(self, rows: int) -> None:
        """A request brought `rows` (taken or refused)."""
        self._request_rows += SIZE_SMOOTHING * (rows - self._request_rows)

    def rows_per_second(self) -> float | None:
        """The writer's pace over its last groups; None before its first commit."""
        if not self._groups:
            return None
        return sum(rows for rows, _ in self._groups) / sum(seconds for _, seconds in self._groups)

    def queue_limit(self) -> int:
        """The most rows that may wait (before the writer's first commit its pace is unknown: the row bound alone)."""
        return self._limit

    def admits(self, queued: int, rows: int | None = None) -> bool:
        """Whether a request of `rows` (None: not read yet, of the recent requests' size) may join `queued`
        waiting rows. An empty queue takes any request: the writer is then idle or writing its last group."""
        if queued == 0:
            return True
        expected = rows if rows is not None else max(1, round(self._request_rows))
        return queued + expected <= self._limit
