"""The REST application: routes, CORS, the XML format guard, error mapping and metrics."""

from __future__ import annotations

import time

from aiohttp import web

from rochallor_server.api.rest import errors, operations, routes
from rochallor_server.api.rest._types import Handler
from rochallor_server.config import DispatchMode
from rochallor_server.engine import limits
from rochallor_server.metrics import Metrics
from rochallor_server.service.engine import Engine

DEFAULT_CLIENT_MAX_SIZE = limits.MAX_REQUEST_BYTES

METRICS_KEY = web.AppKey("metrics", Metrics)

_CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Accept, Authorization, Content-Type",
    "Access-Control-Max-Age": "300",
}


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS on every route; preflights are answered before routing (``rest-api.md`` §2.6)."""
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        return web.Response(status=200, headers=_CORS_HEADERS)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(_CORS_HEADERS)
        raise
    response.headers.update(_CORS_HEADERS)
    return response


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = request.match_info.route.resource
        path = route.canonical if route is not None else "unmatched"
        request.app[METRICS_KEY].http_duration.labels(request.method, path, str(status)).observe(
            time.perf_counter() - started
        )


_XML_TYPES = ("application/xml", "text/xml")


@web.middleware
async def format_guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Any POST under ``/v1/definitions`` declaring XML is refused, before routing (§2.1).

    Only XML is refused: a missing or other content type is parsed as JSON, as in the
    reference.
    """
    if request.method == "POST" and request.path.startswith("/v1/definitions"):
        content_type = request.headers.get("Content-Type", "").lower()
        if any(xml in content_type for xml in _XML_TYPES):
            raise errors.UnsupportedFormat()
    return await handler(request)


def make_app(
    metrics: Metrics,
    engine: Engine,
    *,
    dispatch_mode: DispatchMode = DispatchMode.POLLING,
    client_max_size: int = DEFAULT_CLIENT_MAX_SIZE,
) -> web.Application:
    """The REST listener's application.

    Middlewares, outermost first: CORS (preflights never reach routing), metrics (records the
    final status), error mapping, then the format guard, whose 415 goes through the mapping.
    """
    app = web.Application(
        middlewares=[
            cors_middleware,
            metrics_middleware,
            errors.error_middleware,
            format_guard_middleware,
        ],
        client_max_size=client_max_size,
    )
    app[METRICS_KEY] = metrics
    app[routes.ENGINE_KEY] = engine
    app[routes.DISPATCH_MODE_KEY] = dispatch_mode
    app[routes.OPENAPI_KEY] = routes.load_openapi()
    # Operations first: their fixed paths (``/v1/instances/counts``) win over ``{id}``.
    app.add_routes(operations.routes)
    app.add_routes(routes.routes)
    return app


def make_metrics_app(metrics: Metrics) -> web.Application:
    """The Prometheus listener answers the exposition on every path, like the reference."""

    async def exposition(_request: web.Request) -> web.Response:
        return web.Response(
            body=metrics.exposition(), headers={"Content-Type": "text/plain; version=0.0.4"}
        )

    app = web.Application()
    app.router.add_get("/{tail:.*}", exposition)
    return app
