"""Domain errors to HTTP answers (``spec/rest-api.md`` §2.4).

Handlers raise the domain errors of :mod:`rochallor_server.errors`; :func:`error_middleware`
turns them, and aiohttp's own routing errors, into the wire's answers:

=================================  ======  ========================================
error                              status  body
=================================  ======  ========================================
``DefinitionRejected``             400     ``bad-request`` + ``details``
``BadRequest``                     400     ``bad-request``
``Unauthenticated``                401     ``unauthenticated`` (+ ``WWW-Authenticate``)
``PermissionDenied``               403     ``forbidden``
``NotFound``                       404     ``not-found``
``Conflict``                       409     ``conflict``
``UnsupportedFormat``              415     ``unsupported-format`` (XML, or a non-JSON POST)
body over ``client_max_size``      413     ``bad-request``
``StorageError``, anything else    500     ``internal-error`` (logged, no traceback)
unknown route                      404     plain text ``404 page not found``
wrong method                       405     empty
=================================  ======  ========================================
"""

from __future__ import annotations

import logging

from aiohttp import web

from rochallor_server.api.rest import serde
from rochallor_server.api.rest._types import Handler
from rochallor_server.errors import (
    BadRequest,
    Conflict,
    DefinitionRejected,
    NotFound,
    PermissionDenied,
    RochallorError,
    StorageError,
    Unauthenticated,
)

log = logging.getLogger(__name__)


class UnsupportedFormat(RochallorError):
    """Only JSON workflow definitions are accepted"""


def error_body(code: str, reason: str, **extra: object) -> str:
    # ``message`` repeats ``reason``: the Python SDK reads ``message`` (OpenAPI's name).
    return serde.dumps({"error": code, "reason": reason, "message": reason, **extra}).decode()


def _json(
    exc_class: type[web.HTTPException], code: str, reason: str, **extra: object
) -> web.HTTPException:
    return _plain_json(exc_class(text=error_body(code, reason, **extra)))


def _plain_json(exc: web.HTTPException) -> web.HTTPException:
    # Every JSON answer says exactly ``application/json`` (§2.3), without a charset.
    exc.content_type = "application/json"
    exc.charset = None
    return exc


_ANSWERS: tuple[tuple[type[RochallorError], type[web.HTTPException], str], ...] = (
    (BadRequest, web.HTTPBadRequest, "bad-request"),
    (Unauthenticated, web.HTTPUnauthorized, "unauthenticated"),
    (PermissionDenied, web.HTTPForbidden, "forbidden"),
    (NotFound, web.HTTPNotFound, "not-found"),
    (Conflict, web.HTTPConflict, "conflict"),
    (UnsupportedFormat, web.HTTPUnsupportedMediaType, "unsupported-format"),
)


def _answer(exc: RochallorError) -> tuple[type[web.HTTPException], str]:
    for error, answer, code in _ANSWERS:
        if isinstance(exc, error):
            return answer, code
    return web.HTTPInternalServerError, "internal-error"


def to_http(exc: RochallorError) -> web.HTTPException:
    """The HTTP answer for a domain error."""
    answer, code = _answer(exc)
    if isinstance(exc, DefinitionRejected):
        details = [serde.violation(v) for v in exc.violations]
        return _json(answer, code, exc.message, details=details)
    answered = _json(answer, code, exc.message)
    if isinstance(exc, Unauthenticated):
        answered.headers["WWW-Authenticate"] = 'Bearer realm="rochallor"'
    return answered


def item_result(exc: Exception) -> tuple[int, str, str]:
    """``(status, error code, reason)`` for one item of a batch: what the single request would
    have answered. Storage and unexpected errors are logged here, as the middleware does."""
    if not isinstance(exc, RochallorError):
        log.error("batch item: unexpected error", exc_info=exc)
        return 500, "internal-error", "internal error"
    answer, code = _answer(exc)
    if isinstance(exc, StorageError):
        log.error("batch item: storage failure: %s", exc.message)
    return answer.status_code, code, exc.message


def internal_error() -> web.HTTPException:
    return _json(web.HTTPInternalServerError, "internal-error", "internal error")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        limit = request.client_max_size
        raise _plain_json(
            web.HTTPRequestEntityTooLarge(
                max_size=limit,
                text=error_body("bad-request", f"request body exceeds {limit} bytes"),
            )
        ) from None
    except web.HTTPMethodNotAllowed as exc:
        raise web.HTTPMethodNotAllowed(exc.method, exc.allowed_methods, text="") from None
    except web.HTTPNotFound:
        # Only the router raises it; the handlers answer a missing resource with JSON.
        raise web.HTTPNotFound(text="404 page not found") from None
    except web.HTTPException:
        raise
    except (
        BadRequest,
        NotFound,
        Conflict,
        UnsupportedFormat,
        Unauthenticated,
        PermissionDenied,
    ) as exc:
        raise to_http(exc) from None
    except StorageError as exc:
        log.error("%s %s: storage failure: %s", request.method, request.path, exc.message)
        raise to_http(exc) from None
    except Exception:
        log.exception("%s %s: unexpected error", request.method, request.path)
        raise internal_error() from None
