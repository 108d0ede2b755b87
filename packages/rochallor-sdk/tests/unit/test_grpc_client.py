"""GrpcClient against a local grpclib server built from the generated service base."""

from __future__ import annotations

import asyncio
import datetime
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.server import Server

from rochallor_sdk import (
    Conflict,
    GrpcClient,
    LeaseLost,
    NotFound,
    Registry,
    TransportError,
    Worker,
)
from rochallor_sdk._gen.google.protobuf import Struct
from rochallor_sdk._gen.workflow import v1 as pb

LEASE_END = datetime.datetime(2030, 1, 1, 0, 0, 30, tzinfo=datetime.UTC)


class FakeEngine(pb.WorkflowEngineBase):
    def __init__(self) -> None:
        self.received: list[Any] = []
        self.extend_error: GRPCError | None = None
        self.jobs_left = 1_000_000
        self.completed = asyncio.Event()
        #: CompleteJob answers these errors for these job ids.
        self.complete_errors: dict[str, GRPCError] = {}
        #: When set, each CompleteJob waits until this many are open at once.
        self.complete_together = 0
        self._open_completions = 0
        self._all_open = asyncio.Event()

    async def poll_jobs(self, message: pb.PollJobsRequest) -> pb.PollJobsResponse:
        self.received.append(message)
        if self.jobs_left <= 0:
            return pb.PollJobsResponse(jobs=[])
        self.jobs_left -= 1
        job = pb.Job(
            id="01JOB",
            job_type="charge",
            instance_id="01INST",
            step_id="charge-step",
            step_execution_id="01EXEC",
            retries_remaining=2,
            variables=Struct.from_dict({"amount": 100, "ratio": 0.5, "items": [1, {"n": 2}]}),
            lock_expires_at=LEASE_END,
        )
        return pb.PollJobsResponse(jobs=[job])

    async def complete_job(self, message: pb.CompleteJobRequest) -> pb.CompleteJobResponse:
        self.received.append(message)
        if self.complete_together:
            self._open_completions += 1
            if self._open_completions == self.complete_together:
                self._all_open.set()
            await self._all_open.wait()
        if message.job_id in self.complete_errors:
            raise self.complete_errors[message.job_id]
        self.completed.set()
        return pb.CompleteJobResponse()

    async def fail_job(self, message: pb.FailJobRequest) -> pb.FailJobResponse:
        self.received.append(message)
        return pb.FailJobResponse()

    async def extend_job_lease(
        self, message: pb.ExtendJobLeaseRequest
    ) -> pb.ExtendJobLeaseResponse:
        self.received.append(message)
        if self.extend_error is not None:
            raise self.extend_error
        return pb.ExtendJobLeaseResponse(lock_expires_at=LEASE_END)

    async def upload_definition(
        self, message: pb.UploadDefinitionRequest
    ) -> pb.UploadDefinitionResponse:
        self.received.append(message)
        assert message.definition is not None
        return pb.UploadDefinitionResponse(
            id=message.definition.id, version=3, uploaded_at=LEASE_END
        )

    async def get_instance(self, message: pb.GetInstanceRequest) -> pb.GetInstanceResponse:
        if message.id != "i1":
            raise GRPCError(Status.NOT_FOUND, f'instance "{message.id}" not found')
        return pb.GetInstanceResponse(
            instance=pb.WorkflowInstance(
                id="i1",
                definition_id="d",
                definition_version=1,
                status=pb.InstanceStatus.WAITING,
                current_step_ids=["approve"],
                variables=Struct.from_dict({"n": 1}),
                started_at=LEASE_END,
            )
        )

    async def cancel_instance(self, message: pb.CancelInstanceRequest) -> pb.CancelInstanceResponse:
        raise GRPCError(Status.FAILED_PRECONDITION, "instance is in a terminal state")

    async def get_instance_history(
        self, message: pb.GetInstanceHistoryRequest
    ) -> pb.GetInstanceHistoryResponse:
        execution = pb.StepExecution(
            id="e1",
            instance_id=message.id,
            step_id="a",
            step_type=pb.StepType.SERVICE_TASK,
            attempt_number=1,
            status=pb.StepExecutionStatus.RUNNING,
            started_at=LEASE_END,
        )
        return pb.GetInstanceHistoryResponse(executions=[execution])


@pytest.fixture
async def engine() -> AsyncIterator[tuple[FakeEngine, GrpcClient]]:
    service = FakeEngine()
    server = Server([service])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    await server.start(sock=sock)
    try:
        async with GrpcClient(f"127.0.0.1:{port}", request_timeout=5) as client:
            yield service, client
    finally:
        server.close()
        await server.wait_closed()


async def test_poll_sends_wait_ms_and_converts_struct_numbers(
    engine: tuple[FakeEngine, GrpcClient],
) -> None:
    service, client = engine
    (job,) = await client.poll(worker_id="w", job_types=["charge"], max_jobs=4, wait=1.5)
    (request,) = service.received
    assert (request.worker_id, request.job_types, request.max_jobs, request.wait_ms) == (
        "w",
        ["charge"],
        4,
        1500,
    )
    # Struct numbers travel as doubles; integral ones come back as ints.
    assert job.variables == {"amount": 100, "ratio": 0.5, "items": [1, {"n": 2}]}
    assert type(job.variables["amount"]) is int
    assert job.lock_expires_at == LEASE_END and job.lock_expires_at.tzinfo is not None
    assert (job.step_id, job.retries_remaining) == ("charge-step", 2)


async def test_complete_fail_extend(engine: tuple[FakeEngine, GrpcClient]) -> None:
    service, client = engine
    await client.complete("j1", worker_id="w", variables={"x": 1})
    await client.fail("j1", worker_id="w", error_message="nope", retryable=False)
    assert await client.extend_lease("j1", "w") == LEASE_END
    complete, fail, extend = service.received
    assert complete.job_id == "j1" and complete.variables_to_set.to_dict() == {"x": 1.0}
    assert (fail.job_id, fail.error_message, fail.retryable) == ("j1", "nope", False)
    assert (extend.job_id, extend.worker_id) == ("j1", "w")


async def test_complete_many_sends_concurrent_complete_job_calls(
    engine: tuple[FakeEngine, GrpcClient],
) -> None:
    service, client = engine
    # Each call waits for the three to be open at once: sequential calls would time out.
    service.complete_together = 3
    service.complete_errors = {
        "gone": GRPCError(Status.NOT_FOUND, 'job "gone" not found'),
        "taken": GRPCError(Status.FAILED_PRECONDITION, "job is not locked by this worker"),
    }
    ok, gone, taken = await asyncio.wait_for(
        client.complete_many(
            worker_id="w", completions=[("ok", {"x": 1}), ("gone", {}), ("taken", {})]
        ),
        5,
    )
    assert ok is None
    assert isinstance(gone, NotFound) and gone.status == "NOT_FOUND"
    assert isinstance(taken, Conflict) and taken.reason == "job is not locked by this worker"
    assert sorted(m.job_id for m in service.received) == ["gone", "ok", "taken"]
    assert all(m.worker_id == "w" for m in service.received)


@pytest.mark.parametrize("status", [Status.FAILED_PRECONDITION, Status.NOT_FOUND])
async def test_extend_refused_is_lease_lost(
    engine: tuple[FakeEngine, GrpcClient], status: Status
) -> None:
    service, client = engine
    service.extend_error = GRPCError(status, "not held")
    with pytest.raises(LeaseLost) as info:
        await client.extend_lease("j1", "w")
    assert info.value.job_id == "j1"


async def test_admin_results_have_the_rest_shape(engine: tuple[FakeEngine, GrpcClient]) -> None:
    service, client = engine
    definition = {
        "id": "d",
        "name": "D",
        "steps": [
            {
                "id": "a",
                "name": "A",
                "type": "SERVICE_TASK",
                "jobType": "charge",
                "boundaryEvents": [{"type": "TIMER", "duration": "PT5S", "targetStepId": "b"}],
            },
            {"id": "b", "name": "B", "type": "END"},
        ],
    }
    summary = await client.upload_definition(definition)
    assert summary == {"id": "d", "version": 3, "name": "D", "uploadedAt": LEASE_END.isoformat()}
    sent = service.received[-1].definition
    assert sent.steps[0].type is pb.StepType.SERVICE_TASK
    assert sent.steps[0].boundary_events[0].type is pb.BoundaryEventType.TIMER

    instance = await client.get_instance("i1")
    assert instance["status"] == "WAITING"
    assert instance["variables"] == {"n": 1}
    assert instance["currentStepIds"] == ["approve"]
    assert instance["definitionVersion"] == 1

    (execution,) = await client.get_history("i1")
    assert execution["stepType"] == "SERVICE_TASK"
    assert execution["status"] == "RUNNING"
    assert execution["endedAt"] is None and execution["failureReason"] is None

    with pytest.raises(NotFound):
        await client.get_instance("missing")
    with pytest.raises(Conflict):
        await client.cancel_instance("i1")


async def test_unreachable_engine_is_a_transport_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with GrpcClient(f"grpc://127.0.0.1:{port}", request_timeout=2) as client:
        with pytest.raises(TransportError):
            await client.poll(worker_id="w", job_types=["a"], max_jobs=1, wait=0)


async def test_the_worker_runs_unchanged_over_grpc(engine: tuple[FakeEngine, GrpcClient]) -> None:
    service, client = engine
    service.jobs_left = 1
    registry = Registry()

    @registry.register("charge")
    def charge(ctx: dict[str, Any]) -> dict[str, Any]:
        return {"charged": ctx["variables"]["amount"] * 2}

    worker = Worker(
        registry, client=client, worker_id="grpc-worker", poll_interval=0.01, handle_signals=False
    )
    async with worker:
        await asyncio.wait_for(service.completed.wait(), 5)
    (complete,) = [m for m in service.received if isinstance(m, pb.CompleteJobRequest)]
    assert (complete.job_id, complete.worker_id) == ("01JOB", "grpc-worker")
    assert complete.variables_to_set.to_dict() == {"charged": 200.0}
    polls = [m for m in service.received if isinstance(m, pb.PollJobsRequest)]
    assert polls[0].job_types == ["charge"] and polls[0].worker_id == "grpc-worker"
