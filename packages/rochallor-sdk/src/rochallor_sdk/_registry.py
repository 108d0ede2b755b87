"""Job-type → handler registry."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ParamSpec, TypeAlias, TypedDict, TypeVar, overload

from rochallor_sdk import _errors

P = ParamSpec("P")
R = TypeVar("R")

#: What a handler may return: variables to merge, or ``None`` / ``{}`` for "no change".
JobResult: TypeAlias = Mapping[str, Any] | None
#: Any handler the registry accepts, sync or ``async def``; checked loosely so that a
#: handler annotated ``ctx: dict`` (the quick-start form) keeps its own signature.
Handler: TypeAlias = Callable[..., Any]


class JobContext(TypedDict):
    """The dict handed to a handler (optional typing aid; handlers may annotate ``dict``).

    ``leaseLost`` is a :class:`threading.Event`. It is set when this worker no longer holds
    the job: the lease could not be extended (the engine refused, or it expired while the
    engine was unreachable) or the worker released the job at the end of a graceful
    shutdown. Long sync handlers should check ``ctx["leaseLost"].is_set()`` between steps,
    or sleep with ``ctx["leaseLost"].wait(seconds)``; ``async def`` handlers are cancelled
    instead, so they rarely need it.
    """

    id: str
    jobType: str
    instanceId: str
    stepId: str
    stepExecutionId: str
    retriesRemaining: int
    variables: dict[str, Any]
    lockExpiresAt: str | None
    leaseLost: Any  # threading.Event; Any so that TypedDict stays JSON-like for users


class Registry:
    """Maps job types to handlers.

    ``@registry.register("job-type")`` returns the decorated function unchanged. Registering
    a different handler for a job type that already has one raises
    :class:`~rochallor_sdk.HandlerAlreadyRegistered` and leaves the registry as it was;
    registering the same function again is a no-op. Job types are matched exactly (the
    engine routes on the exact string), so ``"Pay"`` and ``"pay"`` are two job types.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    @overload
    def register(self, job_type: str) -> Callable[[Callable[P, R]], Callable[P, R]]: ...

    @overload
    def register(self, job_type: str, handler: Callable[P, R]) -> Callable[P, R]: ...

    def register(
        self, job_type: str, handler: Callable[P, R] | None = None
    ) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
        """Register ``handler`` for ``job_type``; without ``handler``, return a decorator."""
        _check_job_type(job_type)

        def decorator(func: Callable[P, R]) -> Callable[P, R]:
            if not callable(func):
                raise TypeError(f"handler for {job_type!r} must be callable, got {func!r}")
            existing = self._handlers.get(job_type)
            if existing is not None:
                if existing is func:
                    return func
                raise _errors.HandlerAlreadyRegistered(job_type, existing, func)
            self._handlers[job_type] = func
            return func

        if handler is None:
            return decorator
        return decorator(handler)

    def get(self, job_type: str) -> Handler | None:
        """The handler for ``job_type``, or ``None``."""
        return self._handlers.get(job_type)

    @property
    def job_types(self) -> list[str]:
        """Registered job types, in registration order."""
        return list(self._handlers)

    def __contains__(self, job_type: object) -> bool:
        return job_type in self._handlers

    def __len__(self) -> int:
        return len(self._handlers)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._handlers))

    def __repr__(self) -> str:
        return f"Registry({self.job_types!r})"


def is_async_handler(handler: Handler) -> bool:
    """True for ``async def`` functions (also behind ``functools.partial``)."""
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - async callable objects
    )


def _check_job_type(job_type: object) -> None:
    if not isinstance(job_type, str) or not job_type.strip():
        raise _errors.ConfigurationError(f"job type must be a non-empty string, got {job_type!r}")
    if job_type != job_type.strip():
        raise _errors.ConfigurationError(
            f"job type {job_type!r} has leading or trailing whitespace"
        )


__all__ = ["Handler", "JobContext", "JobResult", "Registry", "is_async_handler"]
