"""The cacheable JSON answer the public flag list, /for_user/ and OFREP's bulk evaluation share."""

from starlette.requests import Request

from ingest_api.responses import etag_json


def _request(if_none_match: str | None = None) -> Request:
    headers = [] if if_none_match is None else [(b"if-none-match", if_none_match.encode())]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers, "query_string": b""})


def test_a_body_goes_out_with_the_etag_of_its_content():
    first = etag_json(_request(), b'{"a":1}')
    assert first.status_code == 200 and first.body == b'{"a":1}'
    assert first.headers["cache-control"] == "no-cache"
    assert first.headers["etag"] == etag_json(_request(), b'{"a":1}').headers["etag"]
    assert first.headers["etag"] != etag_json(_request(), b'{"a":2}').headers["etag"]


def test_a_client_holding_the_etag_gets_a_304_without_the_body():
    etag = etag_json(_request(), b"{}").headers["etag"]
    again = etag_json(_request(f'"other", {etag}'), b"{}")
    assert again.status_code == 304 and again.body == b"" and again.headers["etag"] == etag
    assert etag_json(_request('"other"'), b"{}").status_code == 200
