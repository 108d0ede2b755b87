"""The gRPC edge of access control: a ``RecvRequest`` hook on the grpclib server.

The hook runs in the call's task before the handler: it reads the ``authorization`` metadata
(``Bearer <token>``, as gRPC clients send per-call credentials), asks the shared
:class:`~rochallor_server.auth.AccessControl` about the method's operation (the method name,
as in :data:`rochallor_server.auth.OPERATIONS`), and binds the caller for the handler. The
health service is open; server reflection needs ``read``.
"""

from __future__ import annotations

from typing import Any

from grpclib import events
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from rochallor_server import auth
from rochallor_server.errors import PermissionDenied, Unauthenticated

_HEALTH = "grpc.health.v1.Health"
_REFLECTION_PREFIX = "grpc.reflection."


def operation_of(method_name: str) -> str:
    """``/workflow.v1.WorkflowEngine/PollJobs`` → ``PollJobs``."""
    _, service, method = method_name.split("/", 2)
    if service == _HEALTH:
        return "Health"
    if service.startswith(_REFLECTION_PREFIX):
        return "DescribeApi"
    return method


def install(server: Any, access: auth.AccessControl) -> None:
    """Check every call ``server`` receives against ``access``."""

    async def on_request(event: events.RecvRequest) -> None:
        values = event.metadata.getall("authorization", [])
        authorization = values[0] if values else None
        if isinstance(authorization, bytes):
            authorization = authorization.decode("latin-1")
        try:
            principal = await access.check(authorization, operation_of(event.method_name))
        except Unauthenticated as exc:
            raise GRPCError(Status.UNAUTHENTICATED, exc.message) from None
        except PermissionDenied as exc:
            raise GRPCError(Status.PERMISSION_DENIED, exc.message) from None
        # The handler runs next in this task and context: it sees the caller.
        auth.bind(principal)

    events.listen(server, events.RecvRequest, on_request)
