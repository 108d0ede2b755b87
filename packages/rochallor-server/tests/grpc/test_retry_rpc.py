"""RetryInstance over a real HTTP/2 connection: the REST retry's semantics and error reasons."""

from __future__ import annotations

from typing import Any

from grpclib.const import Status

from rochallor_server._gen.google.protobuf import Struct
from rochallor_server._gen.workflow import v1 as pb

from .conftest import Rest
from .test_rpcs import Stub, failure, start, upload


async def _fail_charge(stub: Stub, instance_id: str) -> None:
    reserve = await stub.poll_jobs(pb.PollJobsRequest(worker_id="w", job_types=["reserve-stock"]))
    await stub.complete_job(pb.CompleteJobRequest(job_id=reserve.jobs[0].id, worker_id="w"))
    for _ in range(2):  # retryCount 1
        charge = await stub.poll_jobs(
            pb.PollJobsRequest(worker_id="w", job_types=["charge-payment"])
        )
        [job] = charge.jobs
        assert job.instance_id == instance_id
        await stub.fail_job(
            pb.FailJobRequest(
                job_id=job.id, worker_id="w", error_message="declined", retryable=True
            )
        )


async def test_retry_instance_resumes_the_failed_step(
    stub: Stub, rest: Rest, order_fulfilment: dict[str, Any]
) -> None:
    await upload(stub, order_fulfilment)
    inst = await start(stub, {"orderId": "o-1"})
    await _fail_charge(stub, inst.id)
    failed = (await stub.get_instance(pb.GetInstanceRequest(id=inst.id))).instance
    assert failed.status == pb.InstanceStatus.FAILED

    request = pb.RetryInstanceRequest(id=inst.id, variables=Struct.from_dict({"card": "new"}))
    retried = (await stub.retry_instance(request)).instance

    assert retried.status == pb.InstanceStatus.ACTIVE
    assert list(retried.current_step_ids) == ["charge-payment"]
    assert retried.failure_reason == "" and retried.completed_at is None
    assert retried.variables is not None and retried.variables.to_dict()["card"] == "new"
    polled = await stub.poll_jobs(pb.PollJobsRequest(worker_id="w", job_types=["charge-payment"]))
    [job] = polled.jobs
    assert job.retries_remaining == 1

    # errors carry the REST reasons
    again = await failure(stub.retry_instance(pb.RetryInstanceRequest(id=inst.id)))
    status, body = await rest.call("POST", f"/v1/instances/{inst.id}/retry")
    assert status == 409
    assert (again.status, again.message) == (Status.FAILED_PRECONDITION, body["reason"])
    gone = await failure(stub.retry_instance(pb.RetryInstanceRequest(id="nope")))
    _, body = await rest.call("POST", "/v1/instances/nope/retry")
    assert (gone.status, gone.message) == (Status.NOT_FOUND, body["reason"])


async def test_list_instances_filters_by_version_and_start_time(
    stub: Stub, order_fulfilment: dict[str, Any]
) -> None:
    await upload(stub, order_fulfilment)
    first = await start(stub)
    changed = dict(order_fulfilment, description="second version")
    await upload(stub, changed)
    second = await start(stub)
    assert (first.definition_version, second.definition_version) == (1, 2)
    assert first.started_at is not None and second.started_at is not None

    async def listed(**filters: Any) -> list[str]:
        answer = await stub.list_instances(pb.ListInstancesRequest(**filters))
        assert answer.total == len(answer.instances)
        return [i.id for i in answer.instances]

    assert await listed(definition_version=1) == [first.id]
    assert await listed(started_after=second.started_at) == [second.id]
    assert await listed(started_before=second.started_at) == [first.id]
    assert await listed() == [second.id, first.id]
    bad = await failure(stub.list_instances(pb.ListInstancesRequest(definition_version=-1)))
    assert bad.status == Status.INVALID_ARGUMENT
