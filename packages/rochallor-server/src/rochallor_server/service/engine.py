"""The engine's use cases, one method per API operation, shared by REST and gRPC.

Each method is one transaction (load, decide with the pure core, persist). Errors are the
domain errors of :mod:`rochallor_server.errors`; the API edges map them to status codes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import attrs

from rochallor_server.engine.model import DefinitionRecord, Instance, Job, JsonObject, StepExecution
from rochallor_server.errors import Violation
from rochallor_server.service.ports import InstanceFilter, Page


@attrs.frozen(kw_only=True)
class UploadResult:
    record: DefinitionRecord
    created: bool
    warnings: list[Violation]


class Engine:
    """Facade over every operation of the API."""

    async def upload_definition(self, document: object) -> UploadResult:
        """``document`` is the decoded JSON body. Raises ``BadRequest`` (``parse error: …``)
        or ``DefinitionRejected``."""
        raise NotImplementedError

    async def get_definition(self, definition_id: str, version: int | None) -> DefinitionRecord:
        """Latest when ``version`` is None. Raises ``NotFound`` (``definition not found``)."""
        raise NotImplementedError

    async def list_definitions(
        self, *, keyword: str | None, page: int, page_size: int
    ) -> Page[DefinitionRecord]:
        raise NotImplementedError

    async def start_instance(
        self,
        *,
        definition_id: str,
        version: int | None,
        variables: JsonObject | None,
        business_key: str | None,
    ) -> Instance:
        raise NotImplementedError

    async def get_instance(self, instance_id: str) -> Instance:
        raise NotImplementedError

    async def list_instances(
        self, *, filter: InstanceFilter, page: int, page_size: int
    ) -> Page[Instance]:
        raise NotImplementedError

    async def history(self, instance_id: str) -> list[StepExecution]:
        raise NotImplementedError

    async def cancel_instance(self, instance_id: str, reason: str) -> Instance:
        raise NotImplementedError

    async def poll_jobs(
        self, *, worker_id: str, job_types: Sequence[str], max_jobs: int, wait_seconds: float
    ) -> list[Job]:
        raise NotImplementedError

    async def complete_job(
        self, job_id: str, *, worker_id: str | None, variables: JsonObject | None
    ) -> None:
        raise NotImplementedError

    async def fail_job(
        self, job_id: str, *, worker_id: str | None, error_message: str | None, retryable: bool
    ) -> None:
        raise NotImplementedError

    async def extend_job_lease(self, job_id: str, *, worker_id: str) -> dt.datetime:
        raise NotImplementedError

    async def complete_user_task(
        self,
        instance_id: str,
        step_id: str,
        *,
        variables: JsonObject | None,
        completed_by: str | None,
    ) -> None:
        raise NotImplementedError

    async def signal(self, instance_id: str, step_id: str, variables: JsonObject | None) -> None:
        raise NotImplementedError
