"""The REST application: routes, CORS, access control, the format guards, error mapping and
metrics."""

from __future__ import annotations

import time
from collections.abc import Iterable

from aiohttp import web

from rochallor_server import auth
from rochallor_server.api.rest import auth as rest_auth
from rochallor_server.api.rest import errors, operations, routes
from rochallor_server.api.rest._types import Handler
from rochallor_server.engine import limits
from rochallor_server.errors import PermissionDenied, Unauthenticated
from rochallor_server.metrics import Metrics
from rochallor_server.service.workflow_service import WorkflowService

DEFAULT_CLIENT_MAX_SIZE = limits.MAX_REQUEST_BYTES

METRICS_KEY = web.AppKey("metrics", Metrics)


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

    Every other non-JSON content type is refused by ``json_only_middleware`` (inner).
    """
    if request.method == "POST" and request.path.startswith("/v1/definitions"):
        content_type = request.headers.get("Content-Type", "").lower()
        if any(xml in content_type for xml in _XML_TYPES):
            raise errors.UnsupportedFormat()
    return await handler(request)


def make_app(
    metrics: Metrics,
    service: WorkflowService,
    *,
    client_max_size: int = DEFAULT_CLIENT_MAX_SIZE,
    access: auth.AccessControl | None = None,
    cors_origins: Iterable[str] = (),
) -> web.Application:
    """The REST listener's application.

    Middlewares, outermost first: CORS and the cross-origin write refusal (preflights never
    reach routing), metrics (records the final status), error mapping, access control, then
    the JSON-only and XML format guards, whose 415 goes through the mapping. Without
    ``access`` nothing is enforced (as when no credentials are configured).
    """
    app = web.Application(
        middlewares=[
            rest_auth.cors_middleware,
            metrics_middleware,
            errors.error_middleware,
            rest_auth.access_middleware,
            format_guard_middleware,
            rest_auth.json_only_middleware,
        ],
        client_max_size=client_max_size,
    )
    app[rest_auth.ACCESS_KEY] = access or auth.AccessControl(auth.MemoryKeyStore(), enforce=False)
    app[rest_auth.CORS_ORIGINS_KEY] = rest_auth.cors_origins(cors_origins)
    app[METRICS_KEY] = metrics
    app[routes.SERVICE_KEY] = service
    app[routes.OPENAPI_KEY] = routes.load_openapi()
    # Operations first: their fixed paths (``/v1/instances/counts``) win over ``{id}``.
    app.add_routes(operations.routes)
    app.add_routes(routes.routes)
    app.add_routes(rest_auth.routes)
    return app


def make_metrics_app(metrics: Metrics, access: auth.AccessControl | None = None) -> web.Application:
    """The Prometheus listener answers the exposition on every path, like the reference.

    With ``access``, a scrape needs a credential whose role may read (``WE_METRICS_AUTH``).
    """

    async def exposition(request: web.Request) -> web.Response:
        if access is not None:
            try:
                await access.check(request.headers.get("Authorization"), "ReadMetrics")
            except (Unauthenticated, PermissionDenied) as exc:
                raise errors.to_http(exc) from None
        return web.Response(
            body=metrics.exposition(), headers={"Content-Type": "text/plain; version=0.0.4"}
        )

    app = web.Application()
    app.router.add_get("/{tail:.*}", exposition)
    return app
