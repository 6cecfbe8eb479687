"""Every route of the app: a HEAD request only ever runs a GET handler (elsewhere it is a 405)."""

from __future__ import annotations

from starlette.routing import Mount, Route

from eventtrack.settings import Settings
from ingest_api.app import create_app


def _all_routes(routes) -> list[Route]:
    found: list[Route] = []
    for route in routes:
        if isinstance(route, Mount):
            found += _all_routes(route.routes)
        elif isinstance(route, Route):
            found.append(route)
    return found


def _handlers(route: Route) -> dict:
    """What runs for each method the route accepts: one handler per method, or the one endpoint for all."""
    dispatch = getattr(route.endpoint, "__self__", None)
    if dispatch is not None and hasattr(dispatch, "handler_for"):
        return {method: dispatch.handler_for(method) for method in route.methods}
    return {method: route.endpoint for method in route.methods}


def test_head_never_reaches_a_handler_of_another_method_than_get():
    app = create_app(Settings(database_url="postgresql://unused/unused"))  # routes only: nothing connects
    routes = _all_routes(app.routes)
    assert len(routes) > 50  # the API, the admin API, PostHog, OFREP and the dashboard's pages
    for route in routes:
        handlers = _handlers(route)
        if "HEAD" not in handlers:
            assert "GET" not in handlers, route.path
            continue
        head = handlers["HEAD"]
        assert head is handlers["GET"], route.path
        also_serves = {method for method, handler in handlers.items() if handler is head} - {"GET", "HEAD"}
        assert not also_serves, f"HEAD {route.path} runs the handler of {sorted(also_serves)}"
