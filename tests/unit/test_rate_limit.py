from ingest_api.rate_limit import TokenBuckets, retry_after_header


def test_burst_passes_then_the_rate_applies():
    buckets = TokenBuckets(rate_per_second=2, burst=3)
    assert [buckets.take("a", 0.0) for _ in range(3)] == [0, 0, 0]
    wait = buckets.take("a", 0.0)
    assert wait == 0.5  # one token back after half a second at 2/s
    assert buckets.take("a", 0.5) == 0


def test_clients_have_separate_buckets():
    buckets = TokenBuckets(rate_per_second=1, burst=1)
    assert buckets.take("a", 0.0) == 0
    assert buckets.take("a", 0.0) > 0
    assert buckets.take("b", 0.0) == 0


def test_bucket_never_fills_beyond_the_burst():
    buckets = TokenBuckets(rate_per_second=10, burst=2)
    buckets.take("a", 0.0)
    assert [buckets.take("a", 1000.0) == 0 for _ in range(3)] == [True, True, False]


def test_memory_is_bounded_by_forgetting_the_least_recent_client():
    buckets = TokenBuckets(rate_per_second=1, burst=1, max_clients=2)
    for client in ("a", "b", "c"):
        buckets.take(client, 0.0)
    assert len(buckets._buckets) == 2 and "a" not in buckets._buckets


def test_retry_after_is_a_whole_number_of_seconds_at_least_one():
    assert retry_after_header(0.2) == "1" and retry_after_header(2.1) == "3"
