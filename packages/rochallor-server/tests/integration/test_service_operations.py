"""The service's operations (retry, bulk retry, workers seen) on PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest

from rochallor_server.engine import limits
from rochallor_server.errors import BadRequest, Conflict, NotFound
from rochallor_server.service import workflow_service as service
from rochallor_server.service.ports import InstanceFilter
from rochallor_server.service.workflow_service import WorkflowService
from rochallor_server.store.postgres import PostgresStore
from rochallor_server.testing import FixedClock

from .services import make_service

DECIDE = {
    "id": "T::decide",
    "name": "Decide",
    "steps": [
        {"id": "route", "name": "Route", "type": "DECISION",
         "conditionalNextSteps": {"ok == true": "work"}},
        {"id": "work", "name": "Work", "type": "SERVICE_TASK", "jobType": "work",
         "retryCount": 2, "nextStep": "end"},
        {"id": "end", "name": "End", "type": "END"},
    ],
}  # fmt: skip


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
async def engine(pg_store: PostgresStore, clock: FixedClock) -> AsyncIterator[WorkflowService]:
    service = make_service(pg_store, clock=clock)
    yield service
    await service.drain()


async def test_bulk_retry_by_filter_takes_the_newest_and_counts_all(
    engine: WorkflowService, clock: FixedClock
) -> None:
    await engine.upload_definition(DECIDE)
    failed = []
    for n in range(3):
        clock.advance(1)
        started = await engine.start_instance(
            definition_id="T::decide", version=None, variables={"ok": False}, business_key=f"k{n}"
        )
        failed.append(started.id)
    clock.advance(1)

    results, matched = await engine.retry_instances(
        instance_ids=None,
        filter=InstanceFilter(definition_id="T::decide"),
        variables={"ok": True},
        limit=2,
    )

    assert matched == 3
    assert [r.instance_id for r in results] == [failed[2], failed[1]]
    assert all(r.instance is not None and r.instance.current_step_ids == ("work",) for r in results)
    jobs = await engine.poll_jobs(
        worker_id="w", job_types=["work"], max_jobs=10, wait_seconds=0, encode=lambda j: j
    )
    assert sorted(j.instance_id for j in jobs) == sorted(failed[1:])
    assert {j.retries_remaining for j in jobs} == {2}
    counts = await engine.count_instances(filter=InstanceFilter(definition_id="T::decide"))
    assert (counts["FAILED"], counts["ACTIVE"]) == (1, 2)


async def test_bulk_retry_by_ids_answers_each_one(
    engine: WorkflowService, clock: FixedClock
) -> None:
    await engine.upload_definition(DECIDE)
    failed = await engine.start_instance(
        definition_id="T::decide", version=None, variables={"ok": False}, business_key=None
    )
    clock.advance(1)

    results, matched = await engine.retry_instances(
        instance_ids=[failed.id, "missing", failed.id],
        filter=None,
        variables={"ok": True},
        limit=100,
    )

    assert matched == 2  # each id once
    first, missing = results
    assert first.instance is not None and first.instance.status.value == "ACTIVE"
    assert isinstance(missing.error, NotFound)
    again, _ = await engine.retry_instances(
        instance_ids=[failed.id], filter=None, variables=None, limit=100
    )
    assert isinstance(again[0].error, Conflict)


async def test_polling_workers_are_recorded_at_most_every_interval(
    engine: WorkflowService, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await engine.poll_jobs(
        worker_id="w1", job_types=["a", "b"], max_jobs=1, wait_seconds=0, encode=str
    )
    clock.advance(5)
    await engine.poll_jobs(
        worker_id="w1", job_types=["b", "a"], max_jobs=1, wait_seconds=0, encode=str
    )
    at, queues = await engine.job_queues(worker_window=dt.timedelta(minutes=5))
    assert at == clock.now()
    seen = {q.job_type: [(w.worker_id, w.seen_at) for w in q.workers] for q in queues}
    first = clock.now() - dt.timedelta(seconds=5)
    assert seen == {"a": [("w1", first)], "b": [("w1", first)]}  # the second poll: throttled

    monkeypatch.setattr(service, "WORKER_RECORD_INTERVAL", 0.0)
    await engine.poll_jobs(worker_id="w1", job_types=["a"], max_jobs=1, wait_seconds=0, encode=str)
    _, queues = await engine.job_queues(worker_window=dt.timedelta(seconds=1))
    assert [(q.job_type, [w.seen_at for w in q.workers]) for q in queues] == [("a", [clock.now()])]


async def test_operations_check_their_input_like_every_other_call(engine: WorkflowService) -> None:
    long = "x" * (limits.MAX_IDENTIFIER_LENGTH + 1)
    too_long = f"id must be at most {limits.MAX_IDENTIFIER_LENGTH} characters"
    with pytest.raises(BadRequest, match=too_long):
        await engine.retry_instance(long, variables=None)
    with pytest.raises(BadRequest, match=r"instanceIds\[1\]"):
        await engine.retry_instances(instance_ids=["a", long], filter=None, variables=None, limit=1)
    with pytest.raises(BadRequest, match=r"filter\.businessKey"):
        await engine.retry_instances(
            instance_ids=None, filter=InstanceFilter(business_key=long), variables=None, limit=1
        )
    with pytest.raises(BadRequest, match="definitionId"):
        await engine.count_instances(filter=InstanceFilter(definition_id=long))
    with pytest.raises(BadRequest, match="jobType"):
        await engine.exhausted_jobs(job_type=long, page=0, page_size=10)
