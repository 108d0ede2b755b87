"""Every RPC and every error status over a real HTTP/2 connection to a real engine.

Error messages are compared with the REST ``reason`` of the same failure (§6).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable
from typing import Any

import attrs
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from rochallor_server._gen.google.protobuf import Struct
from rochallor_server._gen.workflow import v1 as pb
from rochallor_server.api.grpc.server import GrpcListener
from rochallor_server.api.grpc.service import WorkflowEngineService
from rochallor_server.app import Server
from rochallor_server.config import DispatchMode
from rochallor_server.engine.clock import SystemClock, UlidGenerator
from rochallor_server.errors import StorageError
from rochallor_server.service.workflow_service import WorkflowService

from ..api.rest_fakes import FakeService
from .conftest import Rest, definition_message, fixture_definition

Stub = pb.WorkflowEngineStub
ORDER = "SHOP::order-fulfilment"


async def failure(call: Awaitable[Any]) -> GRPCError:
    with pytest.raises(GRPCError) as caught:
        await call
    return caught.value


def parse_ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def rest_view(instance: pb.WorkflowInstance) -> dict[str, Any]:
    """A gRPC instance in the REST shape (``rest-api.md`` §3), for equality checks."""
    out: dict[str, Any] = {
        "id": instance.id,
        "definitionId": instance.definition_id,
        "definitionVersion": instance.definition_version,
        "status": pb.InstanceStatus(instance.status).name,
        "currentStepIds": list(instance.current_step_ids),
        "variables": instance.variables.to_dict() if instance.variables else {},
        "startedAt": instance.started_at,
    }
    if instance.completed_at is not None:
        out["completedAt"] = instance.completed_at
    if instance.failure_reason:
        out["failureReason"] = instance.failure_reason
    if instance.business_key:
        out["businessKey"] = instance.business_key
    return out


def rest_instance(body: dict[str, Any]) -> dict[str, Any]:
    out = dict(body)
    for key in ("startedAt", "completedAt"):
        if key in out:
            out[key] = parse_ts(out[key])
    return out


async def upload(stub: Stub, document: dict[str, Any]) -> pb.UploadDefinitionResponse:
    request = pb.UploadDefinitionRequest(definition=definition_message(document))
    response: pb.UploadDefinitionResponse = await stub.upload_definition(request)
    return response


async def start(
    stub: Stub, variables: dict[str, Any] | None = None, **kw: Any
) -> pb.WorkflowInstance:
    request = pb.StartInstanceRequest(
        definition_id=kw.pop("definition_id", ORDER),
        variables=Struct.from_dict(variables) if variables is not None else None,
        **kw,
    )
    response = await stub.start_instance(request)
    assert response.instance is not None
    instance: pb.WorkflowInstance = response.instance
    return instance


async def poll_one(stub: Stub, job_type: str, worker: str = "w1") -> pb.Job:
    response = await stub.poll_jobs(
        pb.PollJobsRequest(worker_id=worker, job_types=[job_type], max_jobs=1, wait_ms=2000)
    )
    assert len(response.jobs) == 1, response
    job: pb.Job = response.jobs[0]
    return job


# -- definitions -------------------------------------------------------------------------------


async def test_upload_get_and_list_definitions(
    stub: Stub, rest: Rest, order_fulfilment: dict[str, Any]
) -> None:
    uploaded = await upload(stub, order_fulfilment)
    assert (uploaded.id, uploaded.version) == (ORDER, 1)
    assert uploaded.uploaded_at is not None and uploaded.uploaded_at.tzinfo is not None
    # Identical content: the latest version, nothing stored.
    again = await upload(stub, order_fulfilment)
    assert (again.version, again.uploaded_at) == (1, uploaded.uploaded_at)
    changed = dict(order_fulfilment, description="changed")
    assert (await upload(stub, changed)).version == 2

    latest = (await stub.get_definition(pb.GetDefinitionRequest(id=ORDER))).definition
    assert latest.version == 2
    assert latest.description == "changed"
    assert [s.id for s in latest.steps] == [s["id"] for s in order_fulfilment["steps"]]
    assert latest.steps[0].type == pb.StepType.SERVICE_TASK
    assert latest.steps[0].retry_count == 3
    assert (
        dict(latest.steps[2].conditional_next_steps)
        == (order_fulfilment["steps"][2]["conditionalNextSteps"])
    )
    first = (await stub.get_definition(pb.GetDefinitionRequest(id=ORDER, version=1))).definition
    assert (first.version, first.description) == (1, order_fulfilment["description"])

    # REST serves the same stored document.
    status, body = await rest.call("GET", f"/v1/definitions/{ORDER}/versions/1")
    assert status == 200
    assert body == {
        "id": ORDER,
        "version": 1,
        **{k: v for k, v in order_fulfilment.items() if k != "id"},
    }

    await upload(stub, fixture_definition("shop-order-check"))
    listed = await stub.list_definitions(pb.ListDefinitionsRequest())
    assert listed.total == 2
    assert [(d.id, d.version) for d in listed.definitions] == sorted(
        [(ORDER, 2), (fixture_definition("shop-order-check")["id"], 1)]
    )
    assert listed.definitions[[d.id for d in listed.definitions].index(ORDER)].steps
    paged = await stub.list_definitions(pb.ListDefinitionsRequest(page=1, page_size=1))
    assert (paged.total, len(paged.definitions)) == (2, 1)
    keyword = await stub.list_definitions(pb.ListDefinitionsRequest(keyword="fulfil"))
    assert [d.id for d in keyword.definitions] == [ORDER]


async def test_decision_table_round_trips(stub: Stub, rest: Rest) -> None:
    document = fixture_definition("decision-tables")
    message = definition_message(document)
    await stub.upload_definition(pb.UploadDefinitionRequest(definition=message))
    got = (await stub.get_definition(pb.GetDefinitionRequest(id=document["id"]))).definition
    message.version = 1
    assert got.to_dict() == message.to_dict()
    status, body = await rest.call("GET", f"/v1/definitions/{document['id']}")
    assert status == 200
    body.pop("version")
    assert body == document
    # Integers stayed integers although they travelled as doubles.
    assert body["steps"][0]["rules"][2]["outputEntries"] == ["MEDIUM", 20000]


async def test_metadata_is_kept(stub: Stub, order_fulfilment: dict[str, Any]) -> None:
    meta = {"owner": "team-a", "priority": 2, "tags": ["x"]}
    await upload(stub, dict(order_fulfilment, metadata=meta))
    got = (await stub.get_definition(pb.GetDefinitionRequest(id=ORDER))).definition
    assert got.metadata is not None and got.metadata.to_dict() == meta


async def test_upload_errors(stub: Stub, rest: Rest, order_fulfilment: dict[str, Any]) -> None:
    missing = await failure(stub.upload_definition(pb.UploadDefinitionRequest()))
    assert (missing.status, missing.message) == (Status.INVALID_ARGUMENT, "definition is required")

    broken = dict(order_fulfilment, steps=[dict(s) for s in order_fulfilment["steps"]])
    broken["steps"][0]["nextStep"] = "nowhere"
    del broken["steps"][3]["jobType"]
    error = await failure(upload(stub, broken))
    status, body = await rest.call("POST", "/v1/definitions", broken)
    assert status == 400
    assert error.status == Status.INVALID_ARGUMENT
    assert error.message == body["reason"]
    assert error.message is not None and error.message.startswith("validation error:\n")
    assert error.message.count("\n") >= 2

    unspecified = pb.WorkflowDefinition(
        id="A::b", name="b", steps=[pb.WorkflowStep(id="s", name="s")]
    )
    error = await failure(
        stub.upload_definition(pb.UploadDefinitionRequest(definition=unspecified))
    )
    assert error.status == Status.INVALID_ARGUMENT


async def test_get_definition_not_found(
    stub: Stub, rest: Rest, order_fulfilment: dict[str, Any]
) -> None:
    error = await failure(stub.get_definition(pb.GetDefinitionRequest(id="NO::such")))
    _, body = await rest.call("GET", "/v1/definitions/NO::such")
    assert (error.status, error.message) == (Status.NOT_FOUND, body["reason"])
    await upload(stub, order_fulfilment)
    for version in (7, -1):
        error = await failure(
            stub.get_definition(pb.GetDefinitionRequest(id=ORDER, version=version))
        )
        assert error.status == Status.NOT_FOUND


# -- instances ---------------------------------------------------------------------------------


async def test_instances(stub: Stub, rest: Rest, order_fulfilment: dict[str, Any]) -> None:
    await upload(stub, order_fulfilment)
    variables = {"amount": 100, "ratio": 0.5, "customer": {"id": 7, "tags": ["a"]}, "x": None}
    inst = await start(stub, variables, business_key="bk-1")
    assert inst.status == pb.InstanceStatus.ACTIVE
    assert list(inst.current_step_ids) == ["reserve-stock"]
    assert inst.definition_version == 1
    assert inst.business_key == "bk-1"
    assert inst.failure_reason == ""
    assert inst.completed_at is None
    assert inst.started_at is not None and inst.started_at.tzinfo is not None

    status, body = await rest.call("GET", f"/v1/instances/{inst.id}")
    assert status == 200
    # Integral numbers are stored (and shown over REST) as JSON integers.
    assert body["variables"] == variables
    assert type(body["variables"]["amount"]) is int
    got = (await stub.get_instance(pb.GetInstanceRequest(id=inst.id))).instance
    assert rest_view(got) == rest_instance(body)

    other = await start(stub, None, definition_version=1)
    assert other.variables is None or other.variables.to_dict() == {}
    assert other.business_key == ""

    everything = await stub.list_instances(pb.ListInstancesRequest())
    assert everything.total == 2
    assert [i.id for i in everything.instances] == [other.id, inst.id]  # newest first
    by_key = await stub.list_instances(pb.ListInstancesRequest(business_key="bk-1"))
    assert [i.id for i in by_key.instances] == [inst.id]
    by_def = await stub.list_instances(pb.ListInstancesRequest(definition_id=ORDER, page_size=1))
    assert (by_def.total, len(by_def.instances)) == (2, 1)

    history = (await stub.get_instance_history(pb.GetInstanceHistoryRequest(id=inst.id))).executions
    assert [(h.step_id, h.step_type, h.status, h.attempt_number) for h in history] == [
        ("reserve-stock", pb.StepType.SERVICE_TASK, pb.StepExecutionStatus.RUNNING, 1)
    ]
    assert history[0].ended_at is None and history[0].failure_reason == ""
    unknown = await stub.get_instance_history(pb.GetInstanceHistoryRequest(id="nope"))
    assert list(unknown.executions) == []

    cancelled = (
        await stub.cancel_instance(pb.CancelInstanceRequest(id=inst.id, reason="customer left"))
    ).instance
    assert cancelled.status == pb.InstanceStatus.CANCELLED
    assert cancelled.failure_reason == "customer left"
    assert cancelled.completed_at is not None
    history = (await stub.get_instance_history(pb.GetInstanceHistoryRequest(id=inst.id))).executions
    assert history[0].status == pb.StepExecutionStatus.SKIPPED
    assert history[0].ended_at is not None

    active = await stub.list_instances(pb.ListInstancesRequest(status=pb.InstanceStatus.ACTIVE))
    assert [i.id for i in active.instances] == [other.id]
    done = await stub.list_instances(pb.ListInstancesRequest(status=pb.InstanceStatus.CANCELLED))
    assert [i.id for i in done.instances] == [inst.id]

    # Errors, with the REST reasons.
    again = await failure(stub.cancel_instance(pb.CancelInstanceRequest(id=inst.id)))
    status, body = await rest.call("POST", f"/v1/instances/{inst.id}/cancel")
    assert status == 409
    assert (again.status, again.message) == (Status.FAILED_PRECONDITION, body["reason"])
    gone = await failure(stub.cancel_instance(pb.CancelInstanceRequest(id="nope")))
    _, body = await rest.call("POST", "/v1/instances/nope/cancel")
    assert (gone.status, gone.message) == (Status.NOT_FOUND, body["reason"])
    missing = await failure(stub.get_instance(pb.GetInstanceRequest(id="nope")))
    _, body = await rest.call("GET", "/v1/instances/nope")
    assert (missing.status, missing.message) == (Status.NOT_FOUND, body["reason"])


async def test_start_errors(stub: Stub, rest: Rest, order_fulfilment: dict[str, Any]) -> None:
    error = await failure(start(stub, definition_id="NO::such"))
    _, body = await rest.call("POST", "/v1/instances", {"definitionId": "NO::such"})
    assert (error.status, error.message) == (Status.NOT_FOUND, body["reason"])
    await upload(stub, order_fulfilment)
    error = await failure(start(stub, definition_version=9))
    _, body = await rest.call(
        "POST", "/v1/instances", {"definitionId": ORDER, "definitionVersion": 9}
    )
    assert (error.status, error.message) == (Status.NOT_FOUND, body["reason"])
    error = await failure(start(stub, definition_id=""))
    assert error.status == Status.INVALID_ARGUMENT
    bad_status = await failure(stub.list_instances(pb.ListInstancesRequest(status=99)))  # type: ignore[arg-type]
    assert bad_status.status == Status.INVALID_ARGUMENT


# -- jobs --------------------------------------------------------------------------------------


async def test_jobs(stub: Stub, rest: Rest, order_fulfilment: dict[str, Any]) -> None:
    await upload(stub, order_fulfilment)
    first = await start(stub, {"orderId": "o-1", "qty": 2})
    second = await start(stub, {"orderId": "o-2"})

    # one contract with REST: no job types or no worker id is refused (docs/limits.md)
    with pytest.raises(GRPCError) as refused:
        await stub.poll_jobs(pb.PollJobsRequest(worker_id="w1", job_types=[]))
    assert refused.value.status is Status.INVALID_ARGUMENT
    assert refused.value.message == "jobTypes must not be empty"
    with pytest.raises(GRPCError) as refused:
        await stub.poll_jobs(pb.PollJobsRequest(worker_id="", job_types=["reserve-stock"]))
    assert refused.value.message == "workerId is required"
    # max_jobs 0 -> 1
    polled = await stub.poll_jobs(pb.PollJobsRequest(worker_id="w1", job_types=["reserve-stock"]))
    assert len(polled.jobs) == 1
    job = polled.jobs[0]
    assert job.instance_id == first.id
    assert job.step_id == "reserve-stock"
    assert job.job_type == "reserve-stock"
    assert job.retries_remaining == 3
    assert job.variables is not None and job.variables.to_dict() == {"orderId": "o-1", "qty": 2}
    assert job.lock_expires_at is not None and job.lock_expires_at > dt.datetime.now(dt.UTC)
    assert job.step_execution_id

    extended = await stub.extend_job_lease(pb.ExtendJobLeaseRequest(job_id=job.id, worker_id="w1"))
    assert extended.lock_expires_at is not None
    assert extended.lock_expires_at >= job.lock_expires_at
    wrong = await failure(
        stub.extend_job_lease(pb.ExtendJobLeaseRequest(job_id=job.id, worker_id="w2"))
    )
    _, body = await rest.call("POST", f"/v1/jobs/{job.id}/extend", {"workerId": "w2"})
    assert (wrong.status, wrong.message) == (Status.FAILED_PRECONDITION, body["reason"])
    unknown = await failure(
        stub.extend_job_lease(pb.ExtendJobLeaseRequest(job_id="nope", worker_id="w1"))
    )
    assert unknown.status == Status.NOT_FOUND
    no_worker = await failure(stub.extend_job_lease(pb.ExtendJobLeaseRequest(job_id=job.id)))
    assert no_worker.status == Status.INVALID_ARGUMENT

    await stub.complete_job(
        pb.CompleteJobRequest(
            job_id=job.id, worker_id="w1", variables_to_set=Struct.from_dict({"reserved": 3})
        )
    )
    # Completing a finished job again is an OK no-op.
    await stub.complete_job(pb.CompleteJobRequest(job_id=job.id))
    _, body = await rest.call("GET", f"/v1/instances/{first.id}")
    assert body["variables"] == {"orderId": "o-1", "qty": 2, "reserved": 3}
    assert type(body["variables"]["reserved"]) is int
    assert body["currentStepIds"] == ["charge-payment"]

    # Fail: retryable keeps the instance alive, terminal fails it.
    other = await poll_one(stub, "reserve-stock")
    assert other.instance_id == second.id
    await stub.fail_job(
        pb.FailJobRequest(job_id=other.id, worker_id="w1", retryable=True, error_message="flaky")
    )
    retried = await poll_one(stub, "reserve-stock")
    assert (retried.id, retried.retries_remaining) == (other.id, 2)
    await stub.fail_job(pb.FailJobRequest(job_id=other.id, error_message="broken"))
    await stub.fail_job(pb.FailJobRequest(job_id=other.id))  # OK no-op on a terminal job
    failed = (await stub.get_instance(pb.GetInstanceRequest(id=second.id))).instance
    assert failed.status == pb.InstanceStatus.FAILED
    assert "broken" in failed.failure_reason

    for call, path in (
        (stub.complete_job(pb.CompleteJobRequest(job_id="nope")), "/v1/jobs/nope/complete"),
        (stub.fail_job(pb.FailJobRequest(job_id="nope")), "/v1/jobs/nope/fail"),
    ):
        error = await failure(call)
        _, body = await rest.call("POST", path, {})
        assert (error.status, error.message) == (Status.NOT_FOUND, body["reason"])


async def test_long_poll_returns_a_job_created_while_waiting(
    stub: Stub, order_fulfilment: dict[str, Any]
) -> None:
    await upload(stub, order_fulfilment)
    poll = asyncio.create_task(
        stub.poll_jobs(pb.PollJobsRequest(worker_id="w", job_types=["reserve-stock"], wait_ms=5000))
    )
    await asyncio.sleep(0.3)
    assert not poll.done()
    inst = await start(stub, {"k": 1})
    response = await asyncio.wait_for(poll, 5)
    assert [j.instance_id for j in response.jobs] == [inst.id]
    quick = await stub.poll_jobs(
        pb.PollJobsRequest(worker_id="w", job_types=["nothing"], wait_ms=-5)
    )
    assert list(quick.jobs) == []


# -- user tasks and signals --------------------------------------------------------------------

PARKING = {
    "id": "T::parking",
    "name": "parking",
    "steps": [
        {"id": "review", "name": "Review", "type": "USER_TASK", "nextStep": "hold"},
        {"id": "hold", "name": "Hold", "type": "WAIT", "nextStep": "end"},
        {"id": "end", "name": "End", "type": "END"},
    ],
}


async def test_user_task_and_signal(stub: Stub, rest: Rest) -> None:
    await upload(stub, PARKING)
    inst = await start(stub, {"a": 1}, definition_id="T::parking")
    assert inst.status == pb.InstanceStatus.WAITING

    for request in (
        pb.CompleteUserTaskRequest(user_task_step_id="review"),
        pb.CompleteUserTaskRequest(instance_id=inst.id),
    ):
        error = await failure(stub.complete_user_task(request))
        assert error.status == Status.INVALID_ARGUMENT
    for request2 in (
        pb.SignalWaitRequest(wait_step_id="hold"),
        pb.SignalWaitRequest(instance_id=inst.id),
    ):
        error = await failure(stub.signal_wait(request2))
        assert error.status == Status.INVALID_ARGUMENT

    cases = [
        # (gRPC call, REST path, status)
        (
            stub.complete_user_task(
                pb.CompleteUserTaskRequest(instance_id="nope", user_task_step_id="review")
            ),
            "/v1/instances/nope/user-tasks/review/complete",
            Status.NOT_FOUND,
        ),
        (
            stub.complete_user_task(
                pb.CompleteUserTaskRequest(instance_id=inst.id, user_task_step_id="unknown")
            ),
            f"/v1/instances/{inst.id}/user-tasks/unknown/complete",
            Status.NOT_FOUND,
        ),
        (
            stub.complete_user_task(
                pb.CompleteUserTaskRequest(instance_id=inst.id, user_task_step_id="hold")
            ),
            f"/v1/instances/{inst.id}/user-tasks/hold/complete",
            None,
        ),
        (
            stub.signal_wait(pb.SignalWaitRequest(instance_id=inst.id, wait_step_id="hold")),
            f"/v1/instances/{inst.id}/signals/hold",
            Status.FAILED_PRECONDITION,
        ),
        (
            stub.signal_wait(pb.SignalWaitRequest(instance_id=inst.id, wait_step_id="ghost")),
            f"/v1/instances/{inst.id}/signals/ghost",
            Status.FAILED_PRECONDITION,
        ),
        (
            stub.signal_wait(pb.SignalWaitRequest(instance_id="nope", wait_step_id="hold")),
            "/v1/instances/nope/signals/hold",
            Status.NOT_FOUND,
        ),
    ]
    rest_to_grpc = {
        400: Status.INVALID_ARGUMENT,
        404: Status.NOT_FOUND,
        409: Status.FAILED_PRECONDITION,
    }
    for call, path, expected in cases:
        error = await failure(call)
        status, body = await rest.call("POST", path, {})
        assert error.status == rest_to_grpc[status], (path, error)
        if expected is not None:
            assert error.status == expected
        assert error.message == body["reason"], path

    await stub.complete_user_task(
        pb.CompleteUserTaskRequest(
            instance_id=inst.id,
            user_task_step_id="review",
            completed_by="alice",
            result=Struct.from_dict({"approved": True}),
        )
    )
    parked = (await stub.get_instance(pb.GetInstanceRequest(id=inst.id))).instance
    assert list(parked.current_step_ids) == ["hold"]
    await stub.signal_wait(
        pb.SignalWaitRequest(
            instance_id=inst.id, wait_step_id="hold", variables=Struct.from_dict({"n": 5})
        )
    )
    done = (await stub.get_instance(pb.GetInstanceRequest(id=inst.id))).instance
    assert done.status == pb.InstanceStatus.COMPLETED
    _, body = await rest.call("GET", f"/v1/instances/{inst.id}")
    assert body["variables"] == {"a": 1, "approved": True, "n": 5}
    assert rest_view(done) == rest_instance(body)
    error = await failure(
        stub.signal_wait(pb.SignalWaitRequest(instance_id=inst.id, wait_step_id="hold"))
    )
    assert error.status == Status.FAILED_PRECONDITION


# -- dispatch mode, internal errors, metrics ---------------------------------------------------


async def test_poll_in_kafka_outbox_mode_is_failed_precondition(server: Server) -> None:
    assert server.service is not None and server.store is not None
    settings = attrs.evolve(server.settings.engine, dispatch_mode=DispatchMode.KAFKA_OUTBOX)
    engine = WorkflowService(
        server.store,
        settings=settings,
        metrics=server.metrics,
        clock=SystemClock(),
        ids=UlidGenerator(),
    )
    endpoint = GrpcListener(WorkflowEngineService(engine, server.metrics))
    from grpclib.client import Channel

    await endpoint.start("127.0.0.1", 0)
    channel = Channel("127.0.0.1", endpoint.port)
    try:
        error = await failure(
            Stub(channel).poll_jobs(pb.PollJobsRequest(worker_id="w", job_types=["x"]))
        )
        assert error.status == Status.FAILED_PRECONDITION
        assert error.message is not None and "kafka_outbox" in error.message
    finally:
        channel.close()
        await endpoint.stop(grace=1)


async def test_metrics_observe_every_call(stub: Stub, server: Server) -> None:
    await failure(stub.get_instance(pb.GetInstanceRequest(id="nope")))
    await stub.list_definitions(pb.ListDefinitionsRequest())
    exposition = server.metrics.exposition().decode()
    assert (
        'grpc_requests_duration_seconds_count{code="NOT_FOUND",method="GetInstance"} 1.0'
        in exposition
    )
    assert (
        'grpc_requests_duration_seconds_count{code="OK",method="ListDefinitions"} 1.0' in exposition
    )


async def test_internal_errors(server: Server) -> None:
    from grpclib.client import Channel

    broken = FakeService()
    broken.fail("get_instance", StorageError("connection refused"))
    broken.fail("history", RuntimeError("secret detail"))
    endpoint = GrpcListener(WorkflowEngineService(broken, server.metrics))
    await endpoint.start("127.0.0.1", 0)
    channel = Channel("127.0.0.1", endpoint.port)
    try:
        storage = await failure(Stub(channel).get_instance(pb.GetInstanceRequest(id="x")))
        assert (storage.status, storage.message) == (
            Status.INTERNAL,
            "internal error: connection refused",
        )
        other = await failure(
            Stub(channel).get_instance_history(pb.GetInstanceHistoryRequest(id="x"))
        )
        assert (other.status, other.message) == (
            Status.INTERNAL,
            "internal error: unexpected error",
        )
    finally:
        channel.close()
        await endpoint.stop(grace=1)
