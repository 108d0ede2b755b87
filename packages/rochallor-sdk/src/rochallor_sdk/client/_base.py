"""The interfaces every transport implements, and the transport-neutral ``Job``."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

import attrs

#: Most completions one ``complete_many`` call may carry (the engine's batch limit).
COMPLETE_MANY_LIMIT = 100


def check_complete_many(completions: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """Raise ``ValueError`` when ``completions`` is over :data:`COMPLETE_MANY_LIMIT`."""
    if len(completions) > COMPLETE_MANY_LIMIT:
        raise ValueError(
            f"complete_many takes at most {COMPLETE_MANY_LIMIT} completions, got {len(completions)}"
        )


class ClosingClient:
    """``async with client:`` closes the client at the end; subclasses define ``close()``."""

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


@attrs.frozen(kw_only=True)
class Job:
    """A claimed job, as the worker sees it whatever the transport."""

    id: str
    job_type: str
    instance_id: str
    step_id: str = ""
    step_execution_id: str = ""
    retries_remaining: int = 0
    variables: dict[str, Any] = attrs.field(factory=dict)
    #: End of this worker's lease (UTC-aware), ``None`` when the engine sent none.
    lock_expires_at: datetime.datetime | None = attrs.field(default=None)

    @lock_expires_at.validator
    def _aware(self, _attribute: attrs.Attribute[Any], value: datetime.datetime | None) -> None:
        if value is not None and value.utcoffset() is None:
            raise ValueError("lock_expires_at must be timezone-aware")

    def to_context(self) -> dict[str, Any]:
        """The handler's context dict (camelCase keys, as on the REST wire)."""
        return {
            "id": self.id,
            "jobType": self.job_type,
            "instanceId": self.instance_id,
            "stepId": self.step_id,
            "stepExecutionId": self.step_execution_id,
            "retriesRemaining": self.retries_remaining,
            "variables": self.variables,
            "lockExpiresAt": (
                None if self.lock_expires_at is None else self.lock_expires_at.isoformat()
            ),
        }


@runtime_checkable
class JobClient(Protocol):
    """What the :class:`~rochallor_sdk.Worker` needs from a transport.

    Implementations raise :class:`~rochallor_sdk.TransportError` when the engine cannot be
    reached and :class:`~rochallor_sdk.ApiError` (or a subclass) when it answers an error.
    """

    async def poll(
        self, *, worker_id: str, job_types: Sequence[str], max_jobs: int, wait: float
    ) -> list[Job]:
        """Claim up to ``max_jobs`` jobs; the engine may hold the call up to ``wait`` seconds."""
        ...

    async def complete(
        self, job_id: str, *, worker_id: str, variables: Mapping[str, Any] | None
    ) -> None:
        """Complete a job, merging ``variables`` into the instance."""
        ...

    async def complete_many(
        self, *, worker_id: str, completions: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[Exception | None]:
        """Complete several jobs: ``completions`` are ``(job_id, variables)`` pairs, at most
        :data:`COMPLETE_MANY_LIMIT` of them.

        Returns one entry per completion, in order: ``None`` when the engine accepted it,
        else the error :meth:`complete` would have raised for that job. Raises only for the
        call as a whole (engine unreachable, or it refused the request).
        """
        ...

    async def fail(
        self, job_id: str, *, worker_id: str, error_message: str, retryable: bool
    ) -> None:
        """Fail a job (retryable: back to the queue while retries remain)."""
        ...

    async def extend_lease(self, job_id: str, worker_id: str) -> datetime.datetime:
        """Extend the lease; return its new end. :class:`~rochallor_sdk.LeaseLost` if not held."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class AdminClient(Protocol):
    """Definition and instance operations for scripts and tests.

    Results are plain dicts shaped like the REST resources (camelCase keys, bare enum
    names, RFC 3339 timestamps, integral numbers as ``int``), whatever the transport.
    """

    async def upload_definition(self, definition: Mapping[str, Any]) -> dict[str, Any]: ...

    async def get_definition(
        self, definition_id: str, version: int | None = None
    ) -> dict[str, Any]: ...

    async def list_definitions(
        self, *, keyword: str | None = None, page: int = 0, page_size: int = 20
    ) -> dict[str, Any]: ...

    async def start_instance(
        self,
        definition_id: str,
        variables: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        business_key: str | None = None,
    ) -> dict[str, Any]: ...

    async def start_instances(
        self, starts: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any] | Exception]: ...

    async def get_instance(self, instance_id: str) -> dict[str, Any]: ...

    async def list_instances(
        self,
        *,
        definition_id: str | None = None,
        status: str | None = None,
        business_key: str | None = None,
        page: int = 0,
        page_size: int = 20,
    ) -> dict[str, Any]: ...

    async def cancel_instance(
        self, instance_id: str, reason: str | None = None
    ) -> dict[str, Any]: ...

    async def get_history(self, instance_id: str) -> list[dict[str, Any]]: ...

    async def complete_user_task(
        self,
        instance_id: str,
        step_id: str,
        variables: Mapping[str, Any] | None = None,
        *,
        worker_id: str | None = None,
    ) -> None: ...

    async def signal(
        self, instance_id: str, wait_step_id: str, variables: Mapping[str, Any] | None = None
    ) -> None: ...

    async def close(self) -> None: ...
