"""Roles, permissions and the one table of operation → required permission.

Both transports name an operation the same way (the gRPC method name; REST routes map onto
those names in :data:`REST_OPERATIONS`), so a role allows exactly the same things over REST and
gRPC. A role is a set of permissions; an operation needs one permission.
"""

from __future__ import annotations

import enum
from typing import Final


class Role(enum.StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    WORKER = "worker"
    VIEWER = "viewer"


class Permission(enum.StrEnum):
    READ = "read"
    """Read definitions, instances, history (and the metrics, when protected)."""
    OPERATE = "operate"
    """Start, cancel and retry instances; complete user tasks; signal waits."""
    WORK = "work"
    """Poll, complete, fail and extend jobs."""
    DEFINE = "define"
    """Upload definitions."""
    ADMINISTER = "administer"
    """Create, list and revoke API keys."""


ROLE_PERMISSIONS: Final[dict[Role, frozenset[Permission]]] = {
    Role.ADMIN: frozenset(Permission),
    Role.OPERATOR: frozenset({Permission.READ, Permission.OPERATE}),
    Role.WORKER: frozenset({Permission.WORK}),
    Role.VIEWER: frozenset({Permission.READ}),
}

OPERATIONS: Final[dict[str, Permission]] = {
    # definitions
    "UploadDefinition": Permission.DEFINE,
    "GetDefinition": Permission.READ,
    "ListDefinitions": Permission.READ,
    "ValidateDefinition": Permission.READ,
    # instances
    "StartInstance": Permission.OPERATE,
    "StartInstances": Permission.OPERATE,
    "GetInstance": Permission.READ,
    "GetInstanceHistory": Permission.READ,
    "ListInstances": Permission.READ,
    "CancelInstance": Permission.OPERATE,
    "RetryInstance": Permission.OPERATE,
    "RetryInstances": Permission.OPERATE,
    "CountInstances": Permission.READ,
    "GetInstanceAudit": Permission.READ,
    "GetInstanceLinks": Permission.READ,
    "ListDefinitionVersions": Permission.READ,
    "CompleteUserTask": Permission.OPERATE,
    "SignalWait": Permission.OPERATE,
    # jobs
    "PollJobs": Permission.WORK,
    "CompleteJob": Permission.WORK,
    "BatchCompleteJobs": Permission.WORK,
    "FailJob": Permission.WORK,
    "ExtendJobLease": Permission.WORK,
    "GetJobQueues": Permission.READ,
    "ListExhaustedJobs": Permission.READ,
    # service
    "ReadMetrics": Permission.READ,
    "DescribeApi": Permission.READ,
    # keys
    "CreateApiKey": Permission.ADMINISTER,
    "ListApiKeys": Permission.ADMINISTER,
    "RevokeApiKey": Permission.ADMINISTER,
}
"""Every operation of the engine and the permission it needs: the one place to look."""

PUBLIC_OPERATIONS: Final = frozenset({"Health", "ServeUi"})
"""Answered without a credential (``/healthz``, ``/readyz``, ``grpc.health.v1``, the browser UI's
static files under ``/ui/``, which hold no data: the UI sends the user's credential on its API
calls)."""

REST_OPERATIONS: Final[dict[tuple[str, str], str]] = {
    ("POST", "/v1/definitions"): "UploadDefinition",
    ("GET", "/v1/definitions"): "ListDefinitions",
    ("POST", "/v1/definitions/validate"): "ValidateDefinition",
    ("GET", "/v1/definitions/{id}"): "GetDefinition",
    ("GET", "/v1/definitions/{id}/versions/{version}"): "GetDefinition",
    ("GET", "/v1/definitions/{id}/versions"): "ListDefinitionVersions",
    ("GET", "/v1/instances"): "ListInstances",
    ("POST", "/v1/instances"): "StartInstance",
    ("POST", "/v1/instances/batch"): "StartInstances",
    ("GET", "/v1/instances/{id}"): "GetInstance",
    ("GET", "/v1/instances/{id}/history"): "GetInstanceHistory",
    ("POST", "/v1/instances/{id}/cancel"): "CancelInstance",
    ("POST", "/v1/instances/{id}/retry"): "RetryInstance",
    ("POST", "/v1/instances/retry"): "RetryInstances",
    ("GET", "/v1/instances/counts"): "CountInstances",
    ("GET", "/v1/instances/{id}/audit"): "GetInstanceAudit",
    ("GET", "/v1/instances/{id}/links"): "GetInstanceLinks",
    ("POST", "/v1/instances/{instanceId}/user-tasks/{userTaskId}/complete"): "CompleteUserTask",
    ("POST", "/v1/instances/{instanceId}/signals/{waitStepId}"): "SignalWait",
    ("POST", "/v1/jobs/poll"): "PollJobs",
    ("POST", "/v1/jobs/{id}/complete"): "CompleteJob",
    ("POST", "/v1/jobs/batch-complete"): "BatchCompleteJobs",
    ("POST", "/v1/jobs/{id}/fail"): "FailJob",
    ("POST", "/v1/jobs/{id}/extend"): "ExtendJobLease",
    ("GET", "/v1/jobs/queues"): "GetJobQueues",
    ("GET", "/v1/jobs/exhausted"): "ListExhaustedJobs",
    ("GET", "/healthz"): "Health",
    ("GET", "/readyz"): "Health",
    ("GET", "/ui"): "ServeUi",
    ("GET", "/ui/{tail}"): "ServeUi",
    ("GET", "/v1/openapi.json"): "DescribeApi",
    ("POST", "/v1/admin/keys"): "CreateApiKey",
    ("GET", "/v1/admin/keys"): "ListApiKeys",
    ("POST", "/v1/admin/keys/{id}/revoke"): "RevokeApiKey",
}
"""REST route (method, canonical path) → operation."""

UNMAPPED_READ: Final = "UnmappedRead"
UNMAPPED_WRITE: Final = "UnmappedWrite"


def rest_operation(method: str, canonical_path: str) -> str:
    """The operation of a REST route. A route missing from the table needs ``read`` for a
    ``GET`` and ``administer`` for anything else: unknown state changes are admin-only."""
    if method == "HEAD":
        method = "GET"
    found = REST_OPERATIONS.get((method, canonical_path))
    if found is not None:
        return found
    return UNMAPPED_READ if method in {"GET", "HEAD"} else UNMAPPED_WRITE


def required_permission(operation: str) -> Permission | None:
    """The permission ``operation`` needs; ``None`` for public operations."""
    if operation in PUBLIC_OPERATIONS:
        return None
    if operation == UNMAPPED_READ:
        return Permission.READ
    # Unknown operations (and UNMAPPED_WRITE) are admin-only.
    return OPERATIONS.get(operation, Permission.ADMINISTER)


def allows(role: Role, operation: str) -> bool:
    needed = required_permission(operation)
    return needed is None or needed in ROLE_PERMISSIONS[role]
