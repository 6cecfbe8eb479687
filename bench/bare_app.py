"""The baseline for single capture: a Starlette endpoint that only parses the JSON body.

Served by uvicorn exactly like the real app (same flags, same workers), so the
difference between the two is what the ingest path costs: validation,
normalisation and the committed write to Postgres.
"""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def capture(request: Request) -> Response:
    value = orjson.loads(await request.body())
    uuid = value.get("uuid") if isinstance(value, dict) else None
    return Response(orjson.dumps({"accepted": 1, "uuid": uuid}), media_type="application/json")


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(
    routes=[
        Route("/api/v1/analytics/capture/", capture, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
)
