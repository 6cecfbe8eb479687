"""Public feature-flag endpoints (no authentication): list, one flag, evaluation for a user.

Served from the in-process cache (ingest_api/config_cache.py): no database query per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from eventtrack.errors import ApiError
from ingest_api.config_cache import CachedFlag
from ingest_api.decode import parse_json_object, read_body
from ingest_api.flags.exposure import exposure_rows, record_exposures, wants_exposure
from ingest_api.flags.request import flag_distinct_id, object_field
from ingest_api.query_string import query_fields
from ingest_api.responses import etag_json
from ingest_api.routing import API
from ingest_api.state import FLAGS_NOT_LOADED, loaded_snapshot
from ingest_api.write_keys import require_write_key

PUBLIC = f"{API}/public/feature-flags"
_EVENT_FIELDS = ("device_id", "app_version", "os_name", "os_version")
FOR_USER_BODY_LIMIT = 64 * 1024


def public_flag(flag: CachedFlag) -> dict[str, Any]:
    """What a client may know of a flag. Conditions (which can name users, e-mail domains...), rollouts and
    payloads stay behind the admin API; a user's own outcome comes from for_user."""
    data = flag.data
    return {
        "id": data["id"],
        "key": data["key"],
        "name": data["name"],
        "active": data["active"],
        "variant_keys": [v.key for v in flag.definition.variants],
    }


async def list_flags(request: Request) -> Response:
    snapshot = loaded_snapshot(request, FLAGS_NOT_LOADED)
    require_write_key(request)
    body = orjson.dumps({"results": [public_flag(f) for f in snapshot.flags if f.data["active"]]})
    return etag_json(request, body)


async def get_flag(request: Request) -> Response:
    snapshot = loaded_snapshot(request, FLAGS_NOT_LOADED)
    require_write_key(request)
    try:
        flag = snapshot.flags_by_id.get(int(request.path_params["flag_id"]))
    except ValueError:
        flag = None
    if flag is None:
        raise ApiError.of("not_found", "No feature flag has this id.", {"id": "unknown"})
    return Response(orjson.dumps(public_flag(flag)), media_type="application/json")


def _user_context(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """distinct_id and the properties flags are evaluated against (person properties + app fields)."""
    distinct_id = flag_distinct_id(data)
    context = dict(object_field(data, "properties"))
    for name in _EVENT_FIELDS:
        value = data.get(name)
        if value is not None:
            if not isinstance(value, str):
                raise ApiError.of("validation_error", f"{name} must be a string.", {name: "must be a string"})
            context[name] = value
    return distinct_id, context


async def flags_for_user_query(request: Request) -> Response:
    """GET: the user in the query string (`properties` as a JSON object)."""
    raw = request.scope["query_string"]
    query = query_fields(raw)
    data: dict[str, Any] = {k: v for k, v in query.items() if k in ("distinct_id", *_EVENT_FIELDS)}
    if "properties" in query:
        try:
            data["properties"] = orjson.loads(query["properties"])
        except orjson.JSONDecodeError:
            raise ApiError.of(
                "validation_error", "properties must be a JSON object.", {"properties": "must be a JSON object"}
            ) from None
    return await _flags_for_user(request, data, query, ("GET", raw))


async def flags_for_user_body(request: Request) -> Response:
    """POST: the user in a JSON body."""
    body = await read_body(request, FOR_USER_BODY_LIMIT)
    return await _flags_for_user(request, parse_json_object(body), request.query_params, ("POST", body))


async def _flags_for_user(
    request: Request, data: dict[str, Any], query: Mapping[str, str], source: tuple[str, bytes]
) -> Response:
    """`query`: the query string's fields; `source`: the text `data` was read from (it keys the answer cache)."""
    snapshot = loaded_snapshot(request, FLAGS_NOT_LOADED)
    record = wants_exposure(query)
    require_write_key(request, data)
    distinct_id, context = _user_context(data)
    answers = snapshot.for_user
    answer = answers.answer(distinct_id, context, source)
    if record:
        rows = exposure_rows(distinct_id, answers.exposures(answer), datetime.now(UTC))
        await record_exposures(request.app.state.eventtrack, rows)
    return etag_json(request, answer.body, answer.etag)
