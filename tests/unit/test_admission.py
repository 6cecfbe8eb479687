from ingest_api.admission import PACE_GROUPS, Admission


def test_before_the_first_commit_only_the_row_bound_applies():
    admission = Admission(max_queued_rows=1000, commit_timeout=5.0)
    assert admission.rows_per_second() is None
    assert admission.queue_limit() == 1000
    assert admission.admits(900, 100)
    assert not admission.admits(901, 100)


def test_the_queue_holds_what_the_writer_commits_in_a_quarter_of_the_commit_timeout():
    admission = Admission(max_queued_rows=200_000, commit_timeout=4.0)
    admission.committed(2_000, 1.0)
    admission.committed(6_000, 1.0)  # 8,000 rows in 2 s: 4,000 rows/s
    assert admission.rows_per_second() == 4_000
    assert admission.queue_limit() == 4_000  # 1 s of writing
    assert admission.admits(3_900, 100)
    assert not admission.admits(3_901, 100)


def test_the_row_bound_still_caps_a_fast_writer():
    admission = Admission(max_queued_rows=500, commit_timeout=5.0)
    admission.committed(100_000, 1.0)
    assert admission.queue_limit() == 500


def test_the_pace_follows_the_last_groups_only():
    admission = Admission(max_queued_rows=10**9, commit_timeout=4.0)
    for _ in range(PACE_GROUPS):
        admission.committed(10_000, 1.0)
    for _ in range(PACE_GROUPS):
        admission.committed(1_000, 1.0)  # the database slowed down tenfold
    assert admission.rows_per_second() == 1_000
    assert admission.queue_limit() == 1_000


def test_empty_groups_and_instant_commits_are_not_a_pace():
    admission = Admission(max_queued_rows=1000, commit_timeout=5.0)
    admission.committed(0, 1.0)
    admission.committed(10, 0.0)
    assert admission.rows_per_second() is None


def test_an_empty_queue_takes_any_request():
    admission = Admission(max_queued_rows=100, commit_timeout=1.0)
    admission.committed(10, 1.0)  # limit 2 rows
    assert admission.admits(0, 5_000)
    assert not admission.admits(1, 5_000)


def test_a_request_not_read_yet_counts_as_large_as_the_recent_requests():
    admission = Admission(max_queued_rows=1000, commit_timeout=5.0)
    assert admission.admits(999)  # nothing seen yet: one row
    for _ in range(60):
        admission.requested(100)
    assert admission.admits(900)
    assert not admission.admits(901)  # the next one is most likely 100 rows too
    assert admission.admits(999, 1)  # a request known to hold one row still fits


def test_writers_side_by_side_drain_the_queue_faster():
    one, two = Admission(10**9, commit_timeout=4.0), Admission(10**9, commit_timeout=4.0, writers=2)
    for admission in (one, two):
        admission.committed(1000, 1.0)  # 1,000 rows/s per writer: a second of queue each
    assert (one.queue_limit(), two.queue_limit()) == (1000, 2000)
