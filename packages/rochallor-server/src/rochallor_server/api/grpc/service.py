"""The ``workflow.v1.WorkflowEngine`` service (``spec/grpc-contract.md`` §3).

Each RPC applies the request defaults of §3.1, calls one :class:`WorkflowService` method and
converts the result with :mod:`rochallor_server.api.grpc.convert`. Every call goes through
:meth:`WorkflowEngineService._tracked`, which maps domain errors to statuses, observes
``grpc_requests_duration_seconds`` and counts in-flight calls for the graceful stop of
:class:`rochallor_server.api.grpc.server.GrpcListener`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import grpclib.const
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from rochallor_server._gen.workflow import v1 as pb
from rochallor_server.api.grpc import convert
from rochallor_server.api.grpc.errors import to_grpc
from rochallor_server.config import DispatchMode
from rochallor_server.errors import BadRequest
from rochallor_server.metrics import Metrics
from rochallor_server.service.ports import InstanceFilter
from rochallor_server.service.workflow_service import WorkflowService

KAFKA_POLL_MESSAGE: Final = (
    "poll path disabled: dispatch_mode is kafka_outbox; "
    "consume directly from Kafka topic workflow.jobs.<jobType>"
)

_StreamHandler = Callable[[Any], Awaitable[None]]


class CallTracker:
    """Counts in-flight calls; ``draining`` turns new calls away with ``UNAVAILABLE``."""

    def __init__(self) -> None:
        self.count = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    def is_draining(self) -> bool:
        # A method, not the attribute: mypy would keep a narrowed ``draining`` across awaits.
        return self.draining

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self, grace: float) -> bool:
        """``True`` when no call is in flight any more, ``False`` after ``grace`` seconds."""
        try:
            async with asyncio.timeout(grace):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


# mypy skips `_gen` (root pyproject), so the generated base class is `Any` here.
class WorkflowEngineService(pb.WorkflowEngineBase):  # type: ignore[misc]
    """The 13 RPCs of the contract plus ``ExtendJobLease``."""

    def __init__(self, service: WorkflowService, metrics: Metrics) -> None:
        self.service = service
        self.metrics = metrics
        self.calls = CallTracker()

    # -- plumbing ---------------------------------------------------------------------------

    def __mapping__(self) -> dict[str, grpclib.const.Handler]:
        return {
            path: handler._replace(func=self._tracked(path.rsplit("/", 1)[-1], handler.func))
            for path, handler in super().__mapping__().items()
        }

    def _tracked(self, method: str, func: _StreamHandler) -> _StreamHandler:
        """Wrap a generated stream handler: errors, metrics and the in-flight count."""
        calls = self.calls
        histogram = self.metrics.grpc_duration

        def leave(_task: object) -> None:
            calls.leave()

        async def call(stream: Any) -> None:
            if calls.is_draining():
                histogram.labels(method, Status.UNAVAILABLE.name).observe(0.0)
                raise GRPCError(Status.UNAVAILABLE, "server is shutting down")
            task = asyncio.current_task()
            calls.enter()
            if task is None:  # pragma: no cover - grpclib always runs a handler in a task
                leave(None)
            else:
                # The call ends when grpclib's task ends, i.e. after the trailers went out.
                task.add_done_callback(leave)
            started = time.perf_counter()
            code = Status.UNKNOWN
            try:
                await func(stream)
                code = Status.OK
            except GRPCError as exc:
                code = exc.status
                raise
            except asyncio.CancelledError:
                if not calls.is_draining():
                    code = Status.CANCELLED
                    raise
                # The stop's grace ran out and grpclib cancelled the call. grpclib sends no
                # trailers for a cancelled handler, so the client would wait for its deadline;
                # answer UNAVAILABLE (retryable) instead.
                code = Status.UNAVAILABLE
                raise GRPCError(Status.UNAVAILABLE, "server is shutting down") from None
            except Exception as exc:
                error = to_grpc(exc, method=method)
                code = error.status
                raise error from None
            finally:
                histogram.labels(method, code.name).observe(time.perf_counter() - started)

        return call

    # -- definitions ------------------------------------------------------------------------

    async def upload_definition(
        self, message: pb.UploadDefinitionRequest
    ) -> pb.UploadDefinitionResponse:
        if message.definition is None:
            raise BadRequest("definition is required")
        result = await self.service.upload_definition(
            convert.definition_to_json(message.definition)
        )
        record = result.record
        return pb.UploadDefinitionResponse(
            id=record.id, version=record.version, uploaded_at=record.uploaded_at
        )

    async def get_definition(self, message: pb.GetDefinitionRequest) -> pb.GetDefinitionResponse:
        # 0 is proto3's unset: the latest version
        record = await self.service.get_definition(message.id, message.version or None)
        return pb.GetDefinitionResponse(definition=convert.definition(record))

    async def list_definitions(
        self, message: pb.ListDefinitionsRequest
    ) -> pb.ListDefinitionsResponse:
        found = await self.service.list_definitions(
            keyword=message.keyword or None, page=message.page, page_size=message.page_size
        )
        return pb.ListDefinitionsResponse(
            definitions=[convert.definition(record) for record in found.items], total=found.total
        )

    # -- instances --------------------------------------------------------------------------

    async def start_instance(self, message: pb.StartInstanceRequest) -> pb.StartInstanceResponse:
        started = await self.service.start_instance(
            definition_id=message.definition_id,
            version=message.definition_version,
            variables=convert.optional_struct_to_json(message.variables),
            business_key=message.business_key or None,
        )
        return pb.StartInstanceResponse(instance=convert.instance(started))

    async def get_instance(self, message: pb.GetInstanceRequest) -> pb.GetInstanceResponse:
        found = await self.service.get_instance(message.id)
        return pb.GetInstanceResponse(instance=convert.instance(found))

    async def get_instance_history(
        self, message: pb.GetInstanceHistoryRequest
    ) -> pb.GetInstanceHistoryResponse:
        executions = await self.service.history(message.id)
        return pb.GetInstanceHistoryResponse(
            executions=[convert.step_execution(e) for e in executions]
        )

    async def cancel_instance(self, message: pb.CancelInstanceRequest) -> pb.CancelInstanceResponse:
        cancelled = await self.service.cancel_instance(message.id, message.reason)
        return pb.CancelInstanceResponse(instance=convert.instance(cancelled))

    async def retry_instance(self, message: pb.RetryInstanceRequest) -> pb.RetryInstanceResponse:
        retried = await self.service.retry_instance(
            message.id, variables=convert.optional_struct_to_json(message.variables)
        )
        return pb.RetryInstanceResponse(instance=convert.instance(retried))

    async def list_instances(self, message: pb.ListInstancesRequest) -> pb.ListInstancesResponse:
        instance_filter = InstanceFilter(
            definition_id=message.definition_id or None,
            status=convert.instance_status_filter(message.status),
            business_key=message.business_key or None,
            definition_version=message.definition_version or None,
            started_after=message.started_after,
            started_before=message.started_before,
        )
        found = await self.service.list_instances(
            filter=instance_filter, page=message.page, page_size=message.page_size
        )
        return pb.ListInstancesResponse(
            instances=[convert.instance(i) for i in found.items], total=found.total
        )

    # -- jobs -------------------------------------------------------------------------------

    async def poll_jobs(self, message: pb.PollJobsRequest) -> pb.PollJobsResponse:
        if self.service.settings.dispatch_mode is DispatchMode.KAFKA_OUTBOX:
            raise GRPCError(Status.FAILED_PRECONDITION, KAFKA_POLL_MESSAGE)
        # ``max_jobs`` <= 0 means 1 (the reference's default, §3.1); ``lease_seconds`` is
        # ignored: the lease is the server's. An empty ``worker_id`` or ``job_types`` is refused
        # as over REST (``docs/limits.md``).
        jobs = await self.service.poll_jobs(
            worker_id=message.worker_id,
            job_types=list(message.job_types),
            max_jobs=message.max_jobs if message.max_jobs > 0 else 1,
            wait_seconds=max(message.wait_ms, 0) / 1000,
            encode=convert.job,
        )
        return pb.PollJobsResponse(jobs=jobs)

    async def complete_job(self, message: pb.CompleteJobRequest) -> pb.CompleteJobResponse:
        await self.service.complete_job(
            message.job_id,
            worker_id=message.worker_id or None,
            variables=convert.optional_struct_to_json(message.variables_to_set),
        )
        return pb.CompleteJobResponse()

    async def fail_job(self, message: pb.FailJobRequest) -> pb.FailJobResponse:
        await self.service.fail_job(
            message.job_id,
            worker_id=message.worker_id or None,
            error_message=message.error_message or None,
            retryable=message.retryable,
        )
        return pb.FailJobResponse()

    async def extend_job_lease(
        self, message: pb.ExtendJobLeaseRequest
    ) -> pb.ExtendJobLeaseResponse:
        expires = await self.service.extend_job_lease(message.job_id, worker_id=message.worker_id)
        return pb.ExtendJobLeaseResponse(lock_expires_at=expires)

    # -- user tasks and signals -------------------------------------------------------------

    async def complete_user_task(
        self, message: pb.CompleteUserTaskRequest
    ) -> pb.CompleteUserTaskResponse:
        await self.service.complete_user_task(
            message.instance_id,
            message.user_task_step_id,
            variables=convert.optional_struct_to_json(message.result),
            completed_by=message.completed_by or None,
        )
        return pb.CompleteUserTaskResponse()

    async def signal_wait(self, message: pb.SignalWaitRequest) -> pb.SignalWaitResponse:
        await self.service.signal(
            message.instance_id,
            message.wait_step_id,
            convert.optional_struct_to_json(message.variables),
        )
        return pb.SignalWaitResponse()
