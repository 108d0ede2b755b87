"""The server's one fake, :class:`FakeService`, and canned domain records for the REST edge
tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from aiohttp.test_utils import TestClient

from rochallor_server.config import EngineSettings
from rochallor_server.engine.model import (
    AuditEntry,
    DefinitionRecord,
    ExecutionStatus,
    Instance,
    InstanceStatus,
    Job,
    JobStatus,
    JsonObject,
    StepExecution,
)
from rochallor_server.errors import Conflict
from rochallor_server.metrics import Metrics
from rochallor_server.service.ports import (
    AuditRecord,
    ChainLinks,
    ExhaustedJob,
    InstanceFilter,
    JobQueue,
    Page,
    Store,
    VersionStats,
    WorkerSeen,
)
from rochallor_server.service.workflow_service import RetryResult, UploadResult, WorkflowService
from rochallor_server.testing import FixedClock, SequentialIds

T0 = dt.datetime(2025, 3, 1, 12, 34, 56, 789012, tzinfo=dt.UTC)
T1 = dt.datetime(2025, 3, 1, 12, 35, 0, tzinfo=dt.UTC)
# 14:35:26.5 at +02:00 is 12:35:26.5 UTC.
T2 = dt.datetime(2025, 3, 1, 14, 35, 26, 500000, tzinfo=dt.timezone(dt.timedelta(hours=2)))

DOCUMENT: JsonObject = {
    "id": "LOS::loan",
    "name": "Loan",
    "steps": [{"id": "a", "name": "A", "type": "END"}],
    "metadata": {"z": 1, "a": 2},
}


def definition_record(version: int = 3) -> DefinitionRecord:
    return DefinitionRecord(
        id="LOS::loan", version=version, name="Loan", uploaded_at=T0, document=dict(DOCUMENT)
    )


def instance(**changes: Any) -> Instance:
    fields: dict[str, Any] = {
        "id": "01JNQ7Z3K5V2M8R4T6W9XBCDEF",
        "definition_id": "LOS::loan",
        "definition_version": 2,
        "status": InstanceStatus.WAITING,
        "current_step_ids": ("go-wait",),
        "variables": {"amount": 100, "rate": 1.5},
        "started_at": T0,
    }
    fields.update(changes)
    return Instance(**fields)


def job(**changes: Any) -> Job:
    fields: dict[str, Any] = {
        "id": "01JOB0000000000000000000AA",
        "instance_id": "01JNQ7Z3K5V2M8R4T6W9XBCDEF",
        "step_execution_id": "01EXE0000000000000000000AA",
        "step_id": "charge",
        "job_type": "payment",
        "status": JobStatus.LOCKED,
        "retries_remaining": 2,
        "payload": {"amount": 100},
        "created_at": T0,
        "worker_id": "w-1",
        "locked_at": T1,
        "lock_expires_at": T2,
    }
    fields.update(changes)
    return Job(**fields)


def execution(**changes: Any) -> StepExecution:
    fields: dict[str, Any] = {
        "id": "01EXE0000000000000000000AA",
        "instance_id": "01JNQ7Z3K5V2M8R4T6W9XBCDEF",
        "step_id": "step-a",
        "step_type": "SERVICE_TASK",
        "attempt_number": 1,
        "status": ExecutionStatus.RUNNING,
        "started_at": T0,
    }
    fields.update(changes)
    return StepExecution(**fields)


class _NoDatabase:
    """The store under :class:`FakeService`: every operation the REST edge calls is answered
    by the fake itself, so a test that reaches the store fails."""

    async def wait_for_jobs(self, job_types: Sequence[str], timeout: float) -> None:
        raise AssertionError("the REST edge tests reached the store (wait_for_jobs)")

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the REST edge tests reached the store ({name})")


class FakeService(WorkflowService):
    """The server's one fake: a :class:`WorkflowService` at the service seam, below the API
    edges, that records every call and answers from ``results`` (an exception there is raised).
    (The SDK has fakes of the engine for its own unit tests.)

    Why a fake here: the REST edge tests (``tests/api``) check the HTTP mapping only (routing,
    parsing, status codes, error bodies, encodings, the middlewares), and a few gRPC tests the
    status mapping of internal errors and the graceful stop; none of that needs a database.
    Everything below the edges (the service, the store, their concurrency) runs on PostgreSQL
    in the integration tests, never on a fake.

    It is a real service otherwise: built by :class:`WorkflowService`'s own constructor with
    real settings (``settings``, e.g. a dispatch mode), metrics, clock and ids, over a store
    that fails the test if anything reaches it.
    """

    def __init__(self, settings: EngineSettings | None = None) -> None:
        super().__init__(
            cast(Store, _NoDatabase()),
            settings=settings or EngineSettings(),
            metrics=Metrics(),
            clock=FixedClock(),
            ids=SequentialIds(),
        )
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.results: dict[str, Any] = {
            "upload_definition": UploadResult(
                record=definition_record(), created=True, warnings=[]
            ),
            "get_definition": definition_record(),
            "list_definitions": Page(items=[definition_record()], total=1),
            "start_instance": instance(),
            "get_instance": instance(),
            "list_instances": Page(items=[instance()], total=1),
            "history": [execution()],
            "cancel_instance": instance(status=InstanceStatus.CANCELLED),
            "poll_jobs": [job()],
            "complete_job": None,
            "fail_job": None,
            "extend_job_lease": T2,
            "complete_user_task": None,
            "signal": None,
            "check_database": None,
            "retry_instance": instance(status=InstanceStatus.ACTIVE),
            "retry_instances": (
                [
                    RetryResult(instance_id="i1", instance=instance(status=InstanceStatus.ACTIVE)),
                    RetryResult(instance_id="i2", error=Conflict("instance is ACTIVE")),
                ],
                2,
            ),
            "count_instances": {s.value: 1 for s in InstanceStatus},
            "definition_versions": [
                VersionStats(
                    id="LOS::loan",
                    version=1,
                    name="Loan",
                    uploaded_at=T0,
                    instances={"COMPLETED": 3},
                )
            ],
            "instance_audit": [
                AuditRecord(
                    id=7,
                    at=T1,
                    entry=AuditEntry(
                        kind="job-completed",
                        actor="w-1",
                        instance_id="01JNQ7Z3K5V2M8R4T6W9XBCDEF",
                        detail={"jobId": "j"},
                    ),
                )
            ],
            "chain_links": ChainLinks(parent="p", children=["c1", "c2"]),
            "job_queues": (
                T1,
                [
                    JobQueue(
                        job_type="payment",
                        unlocked=2,
                        locked=1,
                        oldest_unlocked_at=T0,
                        exhausted=1,
                        workers=[WorkerSeen(worker_id="w-1", seen_at=T1)],
                    )
                ],
            ),
            "exhausted_jobs": Page(
                items=[
                    ExhaustedJob(
                        id="j",
                        job_type="payment",
                        instance_id="i",
                        step_id="charge",
                        worker_id="w-1",
                        failed_at=T1,
                        error_message="card declined",
                        definition_id="LOS::loan",
                        definition_version=2,
                    )
                ],
                total=1,
            ),
        }

    def fail(self, method: str, error: BaseException) -> None:
        self.results[method] = error

    def last(self, method: str) -> dict[str, Any]:
        found = [arguments for name, arguments in self.calls if name == method]
        if found:
            return found[-1]
        raise AssertionError(f"{method} was not called")

    def called(self, method: str) -> bool:
        return any(name == method for name, _ in self.calls)

    def _answer(self, method: str, **arguments: Any) -> Any:
        self.calls.append((method, arguments))
        result = self.results[method]
        if isinstance(result, BaseException):
            raise result
        return result

    async def upload_definition(self, document: object) -> UploadResult:
        return self._answer("upload_definition", document=document)  # type: ignore[no-any-return]

    async def get_definition(self, definition_id: str, version: int | None) -> DefinitionRecord:
        return self._answer("get_definition", definition_id=definition_id, version=version)  # type: ignore[no-any-return]

    async def list_definitions(
        self, *, keyword: str | None, page: int, page_size: int
    ) -> Page[DefinitionRecord]:
        return self._answer("list_definitions", keyword=keyword, page=page, page_size=page_size)  # type: ignore[no-any-return]

    async def start_instance(
        self,
        *,
        definition_id: str,
        version: int | None,
        variables: JsonObject | None,
        business_key: str | None,
    ) -> Instance:
        return self._answer(  # type: ignore[no-any-return]
            "start_instance",
            definition_id=definition_id,
            version=version,
            variables=variables,
            business_key=business_key,
        )

    async def check_database(self) -> None:
        self._answer("check_database")

    async def get_instance(self, instance_id: str) -> Instance:
        return self._answer("get_instance", instance_id=instance_id)  # type: ignore[no-any-return]

    async def list_instances(
        self, *, filter: InstanceFilter, page: int, page_size: int
    ) -> Page[Instance]:
        return self._answer("list_instances", filter=filter, page=page, page_size=page_size)  # type: ignore[no-any-return]

    async def history(self, instance_id: str) -> list[StepExecution]:
        return self._answer("history", instance_id=instance_id)  # type: ignore[no-any-return]

    async def cancel_instance(self, instance_id: str, reason: str) -> Instance:
        return self._answer("cancel_instance", instance_id=instance_id, reason=reason)  # type: ignore[no-any-return]

    async def poll_jobs(
        self,
        *,
        worker_id: str,
        job_types: Sequence[str],
        max_jobs: int,
        wait_seconds: float,
        encode: Callable[[Job], Any],
    ) -> list[Any]:
        jobs: list[Job] = self._answer(
            "poll_jobs",
            worker_id=worker_id,
            job_types=job_types,
            max_jobs=max_jobs,
            wait_seconds=wait_seconds,
        )
        return [encode(j) for j in jobs]

    async def complete_job(
        self, job_id: str, *, worker_id: str | None, variables: JsonObject | None
    ) -> None:
        self._answer("complete_job", job_id=job_id, worker_id=worker_id, variables=variables)

    async def fail_job(
        self, job_id: str, *, worker_id: str | None, error_message: str | None, retryable: bool
    ) -> None:
        self._answer(
            "fail_job",
            job_id=job_id,
            worker_id=worker_id,
            error_message=error_message,
            retryable=retryable,
        )

    async def extend_job_lease(self, job_id: str, *, worker_id: str) -> dt.datetime:
        return self._answer("extend_job_lease", job_id=job_id, worker_id=worker_id)  # type: ignore[no-any-return]

    async def complete_user_task(
        self,
        instance_id: str,
        step_id: str,
        *,
        variables: JsonObject | None,
        completed_by: str | None,
    ) -> None:
        self._answer(
            "complete_user_task",
            instance_id=instance_id,
            step_id=step_id,
            variables=variables,
            completed_by=completed_by,
        )

    async def signal(self, instance_id: str, step_id: str, variables: JsonObject | None) -> None:
        self._answer("signal", instance_id=instance_id, step_id=step_id, variables=variables)

    # the operations console

    async def retry_instance(self, instance_id: str, *, variables: JsonObject | None) -> Instance:
        return self._answer("retry_instance", instance_id=instance_id, variables=variables)  # type: ignore[no-any-return]

    async def retry_instances(
        self,
        *,
        instance_ids: Sequence[str] | None,
        filter: InstanceFilter | None,
        variables: JsonObject | None,
        limit: int,
    ) -> tuple[list[RetryResult], int]:
        return self._answer(  # type: ignore[no-any-return]
            "retry_instances",
            instance_ids=instance_ids,
            filter=filter,
            variables=variables,
            limit=limit,
        )

    async def count_instances(self, *, filter: InstanceFilter) -> dict[str, int]:
        return self._answer("count_instances", filter=filter)  # type: ignore[no-any-return]

    async def definition_versions(self, definition_id: str) -> list[VersionStats]:
        return self._answer("definition_versions", definition_id=definition_id)  # type: ignore[no-any-return]

    async def instance_audit(
        self, instance_id: str, *, after_id: int, limit: int
    ) -> list[AuditRecord]:
        return self._answer(  # type: ignore[no-any-return]
            "instance_audit", instance_id=instance_id, after_id=after_id, limit=limit
        )

    async def chain_links(self, instance_id: str) -> ChainLinks:
        return self._answer("chain_links", instance_id=instance_id)  # type: ignore[no-any-return]

    async def job_queues(
        self, *, worker_window: dt.timedelta
    ) -> tuple[dt.datetime, list[JobQueue]]:
        return self._answer("job_queues", worker_window=worker_window)  # type: ignore[no-any-return]

    async def exhausted_jobs(
        self, *, job_type: str | None, page: int, page_size: int
    ) -> Page[ExhaustedJob]:
        return self._answer(  # type: ignore[no-any-return]
            "exhausted_jobs", job_type=job_type, page=page, page_size=page_size
        )


ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
Client = TestClient[Any, Any]
