"""Domain errors to gRPC statuses (``spec/grpc-contract.md`` §6).

=================================  =======================  ===============================
error                              status                   message
=================================  =======================  ===============================
``DefinitionRejected``             ``INVALID_ARGUMENT``     the multi-line ``validation error:``
``BadRequest``                     ``INVALID_ARGUMENT``     the REST ``reason``
``Unauthenticated``                ``UNAUTHENTICATED``      the REST ``reason``
``PermissionDenied``               ``PERMISSION_DENIED``    the REST ``reason``
``NotFound``                       ``NOT_FOUND``            the REST ``reason``
``Conflict``                       ``FAILED_PRECONDITION``  the REST ``reason``
``StorageError``, other domain     ``INTERNAL``             ``internal error: <message>``
anything else                      ``INTERNAL``             ``internal error: unexpected error``
=================================  =======================  ===============================

The messages are the REST ``reason`` texts, so both surfaces classify and word a failure the
same way.
"""

from __future__ import annotations

import logging

from grpclib.const import Status
from grpclib.exceptions import GRPCError

from rochallor_server.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PermissionDenied,
    RochallorError,
    StorageError,
    Unauthenticated,
)

log = logging.getLogger(__name__)

INTERNAL_PREFIX = "internal error: "


def to_grpc(exc: BaseException, *, method: str = "") -> GRPCError:
    """The ``GRPCError`` for an error raised while serving ``method`` (logged when internal)."""
    if isinstance(exc, GRPCError):
        return exc
    # DefinitionRejected is a BadRequest whose message is the multi-line validation text.
    if isinstance(exc, BadRequest):
        return GRPCError(Status.INVALID_ARGUMENT, exc.message)
    if isinstance(exc, Unauthenticated):
        return GRPCError(Status.UNAUTHENTICATED, exc.message)
    if isinstance(exc, PermissionDenied):
        return GRPCError(Status.PERMISSION_DENIED, exc.message)
    if isinstance(exc, NotFound):
        return GRPCError(Status.NOT_FOUND, exc.message)
    if isinstance(exc, Conflict):
        return GRPCError(Status.FAILED_PRECONDITION, exc.message)
    if isinstance(exc, StorageError):
        log.error("gRPC %s: storage failure: %s", method, exc.message)
        return GRPCError(Status.INTERNAL, INTERNAL_PREFIX + exc.message)
    if isinstance(exc, RochallorError):
        log.error("gRPC %s: %s", method, exc.message)
        return GRPCError(Status.INTERNAL, INTERNAL_PREFIX + exc.message)
    log.error("gRPC %s: unexpected error", method, exc_info=exc)
    return GRPCError(Status.INTERNAL, INTERNAL_PREFIX + "unexpected error")
