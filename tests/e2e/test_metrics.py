"""GET /metrics: the counters an operator watches, in Prometheus text format."""

from __future__ import annotations

import re
import uuid

from tests.conftest import RunningServer, settings_for


def metric(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_accepted_deduplicated_rejected_and_statuses(database_url, db):
    import httpx

    with RunningServer(settings_for(database_url)) as server, httpx.Client(base_url=server.url) as client:
        dup = {"distinct_id": "u", "event": "x", "uuid": str(uuid.uuid4())}
        client.post(
            "/api/v1/analytics/batch/",
            json={"events": [dup, dup, {"distinct_id": True, "event": "bad"}, {"distinct_id": "v", "event": "y"}]},
        )
        client.post("/api/v1/analytics/capture/", content=b"{", headers={"content-type": "application/json"})
        text = client.get("/metrics").text
    assert metric(text, "eventtrack_events_accepted_total") == 3
    assert metric(text, "eventtrack_events_deduplicated_total") == 1
    assert metric(text, "eventtrack_events_rejected_total", '{reason="validation_error"}') == 1
    assert metric(text, "eventtrack_events_rejected_total", '{reason="invalid_json"}') == 1
    assert metric(text, "eventtrack_batch_size_events_count") == 1
    assert metric(text, "eventtrack_group_commit_rows_count") >= 2
    assert metric(text, "eventtrack_http_responses_total", '{status="200"}') == 1
    assert metric(text, "eventtrack_http_responses_total", '{status="400"}') == 1
    assert "eventtrack_sink_queue_depth 0.0" in text
    assert "\\u0000" not in text and "bad" not in text  # no payloads in metrics
