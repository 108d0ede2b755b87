"""The SDK's exceptions: one root, :class:`RochallorSdkError`, for everything it raises."""

from __future__ import annotations

from typing import Any


class RochallorSdkError(Exception):
    """Rochallor SDK error."""

    def __init__(self, message: str | None = None) -> None:
        # The docstring is the default message, so a bare ``raise X()`` still says something.
        self.message = message or (self.__doc__ or type(self).__name__).strip()
        super().__init__(self.message)


class ConfigurationError(RochallorSdkError):
    """Invalid worker or client configuration."""


class HandlerAlreadyRegistered(RochallorSdkError):
    """Another handler is already registered for this job type."""

    def __init__(self, job_type: str, existing: Any, new: Any) -> None:
        self.job_type = job_type
        self.existing = existing
        self.new = new
        super().__init__(
            f"job type {job_type!r} already has handler {_qualname(existing)}; "
            f"refusing to replace it with {_qualname(new)}"
        )


class NonRetryableError(RochallorSdkError):
    """The job failed and retrying it cannot help.

    Raise it (or a subclass) from a handler: the job is failed with ``retryable=False``,
    which fails the step and the instance whatever retry budget is left.
    """


class HandlerResultError(RochallorSdkError):
    """The handler's return value cannot be sent to the engine."""


class TransportError(RochallorSdkError):
    """The engine could not be reached (connection refused, reset, timed out)."""

    def __init__(self, message: str | None = None, *, operation: str = "") -> None:
        self.operation = operation
        super().__init__(message)


class ApiError(RochallorSdkError):
    """The engine answered with an error.

    ``status`` is the HTTP status (REST) or the gRPC status name (gRPC); ``code`` is the
    REST ``error`` code (``not-found``, ``conflict``, ...) when the body carried one;
    ``details`` the REST ``details`` list of a rejected definition (one
    ``{"code", "message", "stepId"}`` object per violation), else empty.
    """

    def __init__(
        self,
        reason: str | None = None,
        *,
        status: int | str,
        code: str | None = None,
        operation: str = "",
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.reason = reason or ""
        self.operation = operation
        self.details = list(details or [])
        prefix = f"{operation}: " if operation else ""
        super().__init__(f"{prefix}{status} {code or ''} {reason or ''}".rstrip())


class NotFound(ApiError):
    """The engine does not know the requested resource (REST 404, gRPC NOT_FOUND)."""


class Conflict(ApiError):
    """The request does not apply in the resource's state (REST 409, gRPC FAILED_PRECONDITION)."""


class LeaseLost(RochallorSdkError):
    """This worker no longer holds the job's lease."""

    def __init__(self, job_id: str, message: str | None = None) -> None:
        self.job_id = job_id
        super().__init__(message or f"lease lost on job {job_id}")


def _qualname(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or "?"
    name = getattr(obj, "__qualname__", None) or repr(obj)
    return f"{module}.{name}"
