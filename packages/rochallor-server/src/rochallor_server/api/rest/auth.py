"""The REST edge of access control: browser-origin rules, ``Authorization: Bearer`` checks and
the key administration routes.

- **CORS** only for the configured origins (``WE_CORS_ORIGINS``): a preflight from any other
  origin is refused with ``403`` and carries no CORS headers, so the browser never sends the
  request itself.
- **Cross-origin writes**: a ``POST`` whose ``Origin`` is neither configured nor the engine's
  own host is refused with ``403`` before routing.
- **JSON only**: a ``POST`` with a body must declare ``Content-Type: application/json``
  (``415`` otherwise). Browsers send ``text/plain`` and form bodies to any origin without
  asking first; a JSON content type makes them ask (preflight), which the CORS rule refuses.
  (A body-less post carries nothing to parse; from a page on another origin it is refused by
  its ``Origin``, which browsers always send on cross-origin posts.) Every Rochallor SDK
  declares JSON on every post.
- **Credentials**: :func:`access_middleware` resolves the route's operation
  (:func:`rochallor_server.auth.rest_operation`) and asks the shared
  :class:`~rochallor_server.auth.AccessControl`; the caller is bound for the service (audit,
  job-type limits).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp import web

from rochallor_server import auth
from rochallor_server.api.rest import serde
from rochallor_server.api.rest._types import Handler
from rochallor_server.api.rest.errors import UnsupportedFormat, error_body
from rochallor_server.errors import BadRequest

ACCESS_KEY = web.AppKey("access_control", auth.AccessControl)
CORS_ORIGINS_KEY = web.AppKey("cors_origins", frozenset)

_ALLOW = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Accept, Authorization, Content-Type",
    "Access-Control-Max-Age": "300",
}


def _forbidden(reason: str) -> web.HTTPForbidden:
    exc = web.HTTPForbidden(text=error_body("forbidden", reason))
    exc.content_type = "application/json"
    exc.charset = None
    return exc


def _cors_headers(origin: str) -> dict[str, str]:
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin", **_ALLOW}


def _same_host(origin: str, request: web.Request) -> bool:
    return urlsplit(origin).netloc.lower() == (request.host or "").lower()


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS for the configured origins only; preflights are answered before routing."""
    origins = request.app[CORS_ORIGINS_KEY]
    origin = request.headers.get("Origin")
    allowed = origin is not None and origin in origins
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        if not allowed:
            raise _forbidden(f"origin {origin or '(none)'} is not allowed")
        assert origin is not None
        return web.Response(status=200, headers=_cors_headers(origin))
    if (
        request.method not in {"GET", "HEAD", "OPTIONS"}
        and origin is not None
        and not allowed
        and not _same_host(origin, request)
    ):
        raise _forbidden(f"cross-origin request from {origin} refused")
    if not allowed:
        return await handler(request)
    assert origin is not None
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(_cors_headers(origin))
        raise
    response.headers.update(_cors_headers(origin))
    return response


@web.middleware
async def json_only_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A ``POST`` body is declared ``application/json`` (see the module docstring)."""
    if (
        request.method == "POST"
        and request.body_exists
        and request.content_type != "application/json"
    ):
        declared = request.headers.get("Content-Type")
        raise UnsupportedFormat(f"Content-Type must be application/json (got {declared or 'none'})")
    return await handler(request)


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate and authorise the matched route; bind the caller for the service."""
    resource = request.match_info.route.resource
    if resource is None:  # unknown route or method: answered 404/405 by the router
        return await handler(request)
    operation = auth.rest_operation(request.method, resource.canonical)
    principal = await request.app[ACCESS_KEY].check(request.headers.get("Authorization"), operation)
    token = auth.bind(principal)
    try:
        return await handler(request)
    finally:
        auth.unbind(token)


def cors_origins(origins: Iterable[str]) -> frozenset[str]:
    return frozenset(o.strip().rstrip("/") for o in origins if o.strip())


# -- key administration ------------------------------------------------------------------------

routes = web.RouteTableDef()


def _key_json(key: auth.ApiKey) -> dict[str, object]:
    body: dict[str, object] = {
        "id": key.id,
        "name": key.name,
        "role": key.role.value,
        "createdAt": serde.timestamp(key.created_at),
    }
    if key.job_types is not None:
        body["jobTypes"] = sorted(key.job_types)
    if key.created_by is not None:
        body["createdBy"] = key.created_by
    if key.revoked_at is not None:
        body["revokedAt"] = serde.timestamp(key.revoked_at)
    return body


def _json(value: object, *, status: int = 200) -> web.Response:
    return web.Response(status=status, body=serde.dumps(value), content_type="application/json")


@routes.post("/v1/admin/keys")
async def create_key(request: web.Request) -> web.Response:
    body = serde.Body.required(await request.read())
    name = body.string("name")
    role = body.string("role")
    if not name:
        raise BadRequest("name is required")
    if not role:
        raise BadRequest("role is required")
    job_types = body.strings("jobTypes")
    key, token = await request.app[ACCESS_KEY].create_key(
        name=name, role=role, job_types=job_types, created_by=auth.current_id()
    )
    return _json({**_key_json(key), "token": token}, status=201)


@routes.get("/v1/admin/keys")
async def list_keys(request: web.Request) -> web.Response:
    keys = await request.app[ACCESS_KEY].list_keys()
    return _json({"items": [_key_json(k) for k in keys]})


@routes.post("/v1/admin/keys/{id}/revoke")
async def revoke_key(request: web.Request) -> web.Response:
    key = await request.app[ACCESS_KEY].revoke_key(request.match_info["id"])
    return _json(_key_json(key))
