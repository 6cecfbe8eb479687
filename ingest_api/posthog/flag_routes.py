"""POST /flags/?v=2 and /decide/?v=3|4: PostHog SDKs' flag requests, served from the config cache."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ingest_api.decode import parse_json_object, read_body
from ingest_api.flags.exposure import exposure_rows, record_exposures, wants_exposure
from ingest_api.flags.request import flag_distinct_id, object_field
from ingest_api.posthog.decode import decode_request_body
from ingest_api.posthog.flags import evaluate_all, flags_response, wants_detailed
from ingest_api.state import FLAGS_NOT_LOADED, loaded_snapshot
from ingest_api.write_keys import require_write_key

FLAGS_BODY_LIMIT = 64 * 1024


async def _body(request: Request) -> dict[str, Any]:
    raw = await read_body(request, FLAGS_BODY_LIMIT)
    body = decode_request_body(raw, request, FLAGS_BODY_LIMIT)
    return parse_json_object(body)


async def _answer(request: Request, path_kind: str) -> Response:
    snapshot = loaded_snapshot(request, FLAGS_NOT_LOADED)
    record = wants_exposure(request.query_params)
    data = await _body(request)
    require_write_key(request, data)
    distinct_id = flag_distinct_id(data)
    properties = object_field(data, "person_properties")
    only = data.get("flag_keys_to_evaluate")
    only = {k for k in only if isinstance(k, str)} if isinstance(only, list) else None
    results = evaluate_all(snapshot.flags, distinct_id, properties, only)
    if record:
        responses = [(flag.data["key"], result.variant or result.active) for flag, result in results]
        await record_exposures(request.app.state.eventtrack, exposure_rows(distinct_id, responses, datetime.now(UTC)))
    answer = flags_response(results, wants_detailed(path_kind, request.query_params.get("v")))
    return Response(orjson.dumps(answer), media_type="application/json")


async def flags(request: Request) -> Response:
    return await _answer(request, "flags")


async def decide(request: Request) -> Response:
    return await _answer(request, "decide")
