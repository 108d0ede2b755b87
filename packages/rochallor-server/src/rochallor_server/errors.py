"""The server's one error root and its domain errors.

Nothing here knows about HTTP or gRPC: ``api/rest/errors.py`` and ``api/grpc/errors.py``
map these classes to status codes at the edges.
"""

from __future__ import annotations

from typing import Any


class RochallorError(Exception):
    """Unexpected engine error."""

    def __init__(self, message: str | None = None, **context: Any) -> None:
        self.message = message or (self.__doc__ or "").strip()
        self.context = context
        super().__init__(self.message)


class ConfigError(RochallorError):
    """Invalid configuration."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        super().__init__(f"{variable}: {problem}")


class BadRequest(RochallorError):
    """The request is malformed."""


class NotFound(RochallorError):
    """The resource was not found."""


class Conflict(RochallorError):
    """The request does not apply to the resource's current state."""


class Unauthenticated(RochallorError):
    """a valid credential is required"""


class PermissionDenied(RochallorError):
    """the credential does not allow this operation"""


class StorageError(RochallorError):
    """The database failed."""


class TransientStorageError(StorageError):
    """The database aborted the transaction (deadlock or serialization failure); retry it."""


class InstanceChanged(TransientStorageError):
    """Another event wrote the instance after this one read it; nothing was written: decide the
    event again on fresh state."""


class DefinitionRejected(BadRequest):
    """validation error"""

    def __init__(self, violations: list[Violation]) -> None:
        self.violations = violations
        lines = "\n".join(f"  {v.message}" for v in violations)
        super().__init__(f"validation error:\n{lines}")


class Violation:
    """One validation finding of a definition: machine code, message, step id if any."""

    __slots__ = ("code", "message", "path", "step_id")

    def __init__(self, code: str, message: str, step_id: str | None, path: str = "") -> None:
        self.code = code
        self.message = message
        self.step_id = step_id
        self.path = path
