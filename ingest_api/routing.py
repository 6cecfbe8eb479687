"""How every part of the API declares its routes: one handler per HTTP method.

Starlette answers HEAD on any route that lists GET by running the route's
endpoint. An endpoint serving several methods and branching on
`request.method == "GET"` sent a HEAD down its write branch (a HEAD with a body
replaced a flag). Here each method has its own handler and HEAD runs the GET
handler, or is refused (405) where there is no GET.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

API = "/api/v1/analytics"  # the prefix of the native API's paths
Handler = Callable[[Request], Awaitable[Response]]


class MethodHandlers:
    """The handlers of one path by method; `endpoint` is what the route runs."""

    def __init__(self, handlers: Mapping[str, Handler]):
        self.handlers = dict(handlers)

    def handler_for(self, method: str) -> Handler | None:
        # Starlette drops the body of the answer to a HEAD.
        return self.handlers.get("GET" if method == "HEAD" else method)

    async def endpoint(self, request: Request) -> Response:
        # The route already refused (405) any method missing from `handlers`.
        return await self.handler_for(request.method)(request)


def method_routes(path: str, handlers: Mapping[str, Handler]) -> list[Route]:
    """The routes serving `path` with one handler per method.

    A documented path ending in a slash answers without it too (no redirect: SDKs POST).
    """
    endpoint = next(iter(handlers.values())) if len(handlers) == 1 else MethodHandlers(handlers).endpoint
    paths = [path, path.rstrip("/")] if path.endswith("/") and path != "/" else [path]
    return [Route(p, endpoint, methods=list(handlers)) for p in paths]
