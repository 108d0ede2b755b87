"""The REST application: routes, CORS and per-request metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from rochallor_server.metrics import Metrics

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

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


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(status=200)


def make_app(metrics: Metrics, *, client_max_size: int = 8 * 1024 * 1024) -> web.Application:
    app = web.Application(
        middlewares=[cors_middleware, metrics_middleware], client_max_size=client_max_size
    )
    app[METRICS_KEY] = metrics
    app.router.add_get("/healthz", healthz)
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
