"""The baseline for for_user: a Starlette endpoint that reads the same query and answers a small JSON.

Served by uvicorn exactly like the real app, so the difference is what flag
evaluation (20 flags, from the in-process cache) and the ETag cost.
"""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def for_user(request: Request) -> Response:
    distinct_id = request.query_params.get("distinct_id")
    return Response(orjson.dumps({"distinct_id": distinct_id, "flags": {}}), media_type="application/json")


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(
    routes=[
        Route("/api/v1/analytics/public/feature-flags/for_user/", for_user, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
)
