"""`eventtrack demo`'s progress: one redrawn line on a terminal, a few plain lines otherwise."""

import io

from eventtrack_cli.demo import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_one_line_redrawn_in_place():
    out = Terminal()
    progress = Progress(out, total=1000)
    for done in range(1, 1001):
        progress.update(done, failed=0 if done < 500 else 3)
    progress.close()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    assert text.count("\r") == 40  # every 25 requests
    assert text.rstrip("\n").rsplit("\r", 1)[1] == f"[{'#' * 40}] 1000/1000 requests (3 failed)"


def test_a_log_or_pipe_gets_ten_plain_lines_at_most():
    out = io.StringIO()
    progress = Progress(out, total=1234)
    for done in range(1, 1235):
        progress.update(done, failed=0)
    progress.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 10  # every 124 requests, and the last
    assert lines[0] == "demo: 124/1234 requests sent" and lines[-1] == "demo: 1234/1234 requests sent"


def test_few_requests_still_end_with_the_total():
    out = io.StringIO()
    progress = Progress(out, total=3)
    for done in range(1, 4):
        progress.update(done, failed=done)
    assert out.getvalue().splitlines()[-1] == "demo: 3/3 requests sent (3 failed)"
