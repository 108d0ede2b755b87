"""The limits of ``docs/limits.md`` over gRPC: one contract with REST (``test_input_safety.py``)."""

from __future__ import annotations

from typing import Any

from grpclib.const import Status

from rochallor_server._gen.workflow import v1 as pb
from rochallor_server.api.grpc import convert

from .test_rpcs import Stub, failure, poll_one, start, upload

NUL = "a\u0000b"


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


async def test_bad_input_is_invalid_argument_naming_the_field(
    stub: Stub, order_fulfilment: dict[str, Any]
) -> None:
    await upload(stub, order_fulfilment)
    definition_id = order_fulfilment["id"]
    cases = [
        (
            stub.start_instance(
                pb.StartInstanceRequest(definition_id=definition_id, business_key=NUL)
            ),
            "businessKey",
        ),
        (
            stub.start_instance(
                pb.StartInstanceRequest(
                    definition_id=definition_id, variables=convert.struct_from_json({"k": NUL})
                )
            ),
            "variables.k",
        ),
        (
            stub.start_instance(
                pb.StartInstanceRequest(
                    definition_id=definition_id,
                    variables=convert.struct_from_json({"d": nested(64)}),
                )
            ),
            "variables.d",
        ),
        (stub.start_instance(pb.StartInstanceRequest(definition_id="")), "definitionId"),
        (stub.get_instance(pb.GetInstanceRequest(id=NUL)), "id"),
        (stub.list_instances(pb.ListInstancesRequest(business_key=NUL)), "businessKey"),
        (stub.poll_jobs(pb.PollJobsRequest(worker_id=NUL, job_types=["x"])), "workerId"),
        (stub.poll_jobs(pb.PollJobsRequest(worker_id="w", job_types=["x", NUL])), "jobTypes[1]"),
        (stub.complete_job(pb.CompleteJobRequest(job_id=NUL)), "jobId"),
        (stub.fail_job(pb.FailJobRequest(job_id="j", error_message=NUL)), "errorMessage"),
        (stub.cancel_instance(pb.CancelInstanceRequest(id="i" * 300)), "id"),
        (stub.signal_wait(pb.SignalWaitRequest(instance_id="", wait_step_id="w")), "instanceId"),
    ]
    for call, field in cases:
        error = await failure(call)
        assert error.status is Status.INVALID_ARGUMENT, (field, error)
        assert error.message is not None
        assert error.message.startswith(field), error.message

    # nothing was stored: the engine goes on
    instance = await start(stub, {"orderId": "o-1"})
    job = await poll_one(stub, "reserve-stock")
    assert job.instance_id == instance.id


async def test_a_message_past_the_rest_body_limit_is_refused(
    stub: Stub, order_fulfilment: dict[str, Any]
) -> None:
    await upload(stub, order_fulfilment)
    big = convert.struct_from_json({"v": "x" * 9_000_000})

    error = await failure(
        stub.start_instance(
            pb.StartInstanceRequest(definition_id=order_fulfilment["id"], variables=big)
        )
    )

    assert error.status is Status.RESOURCE_EXHAUSTED
    assert error.message == "request message exceeds 8388608 bytes"
