import logging

import orjson

from ingest_api.logging_setup import JsonFormatter
from ingest_api.middleware import request_id_var


def test_log_lines_are_json_with_the_request_id():
    token = request_id_var.set("req-42")
    try:
        record = logging.LogRecord(
            "ingest_api.sink", logging.WARNING, __file__, 1, "database unavailable: %s", ("timeout",), None
        )
        line = orjson.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["level"] == "warning" and line["logger"] == "ingest_api.sink"
    assert line["msg"] == "database unavailable: timeout" and line["request_id"] == "req-42"
