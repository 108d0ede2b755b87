"""The operations console's store reads on PostgreSQL: instance filters and counts per status,
definition versions, job queues, exhausted jobs, workers seen, an instance's audit and chain
links."""

from __future__ import annotations

from typing import Any

import pytest

from rochallor_server.engine.commands import (
    Audit,
    FailJob,
    InsertExecution,
    InsertInstance,
    InsertJob,
    SaveInstance,
)
from rochallor_server.engine.model import AuditEntry, InstanceStatus, JobStatus
from rochallor_server.service.ports import InstanceFilter, Store, WorkerSeen
from rochallor_server.store.postgres import PostgresStore

from .records import T0, at, make_execution, make_instance, make_job
from .test_store_events import apply


@pytest.fixture
def store(pg_store: PostgresStore) -> PostgresStore:
    return pg_store


async def test_instance_filters_and_counts_per_status(store: Store) -> None:
    rows = [
        make_instance(definition_id="a", definition_version=1, started_at=at(1)),
        make_instance(
            definition_id="a",
            definition_version=2,
            status=InstanceStatus.FAILED,
            started_at=at(2),
        ),
        make_instance(definition_id="a", definition_version=2, started_at=at(3)),
        make_instance(definition_id="b", business_key="k", started_at=at(4)),
    ]
    await apply(store, *(InsertInstance(instance=i) for i in rows))

    async def listing(**filters: Any) -> list[int]:
        async with store.transaction() as tx:
            page = await tx.list_instances(filter=InstanceFilter(**filters), offset=0, limit=10)
        assert page.total == len(page.items)
        return [rows.index(i) for i in page.items]

    async def counts(**filters: Any) -> dict[str, int]:
        async with store.session() as tx:
            return await tx.count_instances(filter=InstanceFilter(**filters))

    assert await listing(definition_id="a", definition_version=2) == [2, 1]
    assert await listing(started_after=at(2)) == [3, 2, 1]
    assert await listing(started_before=at(2)) == [0]
    assert await listing(started_after=at(2), started_before=at(4), status="ACTIVE") == [2]
    assert await counts() == {"ACTIVE": 3, "FAILED": 1}
    # the status filter is not a count filter
    assert await counts(definition_id="a", status="ACTIVE") == {"ACTIVE": 2, "FAILED": 1}
    assert await counts(definition_version=2, started_before=at(3)) == {"FAILED": 1}
    assert await counts(business_key="k") == {"ACTIVE": 1}
    assert await counts(definition_id="none") == {}


async def test_definition_versions_count_their_instances(store: Store) -> None:
    for name in ("One", "Two"):
        async with store.transaction() as tx:
            document = {"id": "flow", "name": name, "steps": []}
            await tx.insert_definition(
                document=document, definition_id="flow", name=name, uploaded_at=T0
            )
    await apply(
        store,
        InsertInstance(instance=make_instance(definition_id="flow", definition_version=2)),
        InsertInstance(instance=make_instance(definition_id="flow", definition_version=2)),
        InsertInstance(
            instance=make_instance(
                definition_id="flow", definition_version=1, status=InstanceStatus.COMPLETED
            )
        ),
    )
    async with store.session() as tx:
        versions = await tx.definition_versions("flow")
        assert await tx.definition_versions("missing") == []
    assert [(v.version, v.name, v.instances) for v in versions] == [
        (1, "One", {"COMPLETED": 1}),
        (2, "Two", {"ACTIVE": 2}),
    ]


async def test_job_queues_exhausted_jobs_and_workers(store: Store) -> None:
    instance = make_instance()
    execution = make_execution(instance, failure_reason=None)
    open_jobs = [
        make_job(execution, "pay", created_at=at(3)),
        make_job(execution, "pay", created_at=at(1)),
        make_job(execution, "pay", status=JobStatus.LOCKED, worker_id="w1", created_at=at(0)),
        make_job(execution, "ship", status=JobStatus.LOCKED, worker_id="w1"),
    ]
    failing = make_instance(definition_id="flow", definition_version=3)
    failed_execution = make_execution(failing, "charge")
    earlier = make_job(failed_execution, "pay")  # failed at an earlier failure: not counted
    last = make_job(failed_execution, "pay")
    await apply(
        store,
        InsertInstance(instance=instance),
        InsertExecution(execution=execution, input_snapshot={}),
        *(InsertJob(job=j) for j in open_jobs),
        InsertInstance(instance=failing),
        InsertExecution(execution=failed_execution, input_snapshot={}),
        InsertJob(job=earlier),
        InsertJob(job=last),
        FailJob(job_id=earlier.id, worker_id="w0", at=at(4)),
        FailJob(job_id=last.id, worker_id="w2", at=at(5)),
    )
    failed = make_instance(
        id=failing.id,
        definition_id="flow",
        definition_version=3,
        status=InstanceStatus.FAILED,
        completed_at=at(5),
        failure_reason="declined",
    )
    await apply(store, SaveInstance(instance=failed))
    async with store.session() as tx:
        await tx.record_workers(
            worker_id="w1", job_types=["pay", "ship"], seen_at=at(8), forget_before=at(0)
        )
        await tx.record_workers(
            worker_id="w2", job_types=["pay"], seen_at=at(9), forget_before=at(0)
        )
        await tx.record_workers(
            worker_id="w1", job_types=["pay"], seen_at=at(7), forget_before=at(0)
        )  # an older sighting changes nothing
        await tx.record_workers(
            worker_id="w3", job_types=["idle"], seen_at=at(2), forget_before=at(0)
        )
        queues = {q.job_type: q for q in await tx.job_queues(seen_since=at(5))}
        exhausted = await tx.exhausted_jobs(job_type=None, offset=0, limit=10)
        assert (await tx.exhausted_jobs(job_type="ship", offset=0, limit=10)).total == 0

    assert list(queues) == ["pay", "ship"]
    pay = queues["pay"]
    assert (pay.unlocked, pay.locked, pay.oldest_unlocked_at, pay.exhausted) == (2, 1, at(1), 1)
    assert pay.workers == [
        WorkerSeen(worker_id="w2", seen_at=at(9)),
        WorkerSeen(worker_id="w1", seen_at=at(8)),
    ]
    assert (queues["ship"].locked, queues["ship"].unlocked, queues["ship"].exhausted) == (1, 0, 0)
    assert exhausted.total == 1
    [job] = exhausted.items
    assert (job.id, job.job_type, job.instance_id, job.step_id, job.worker_id) == (
        last.id,
        "pay",
        failing.id,
        "charge",
        "w2",
    )
    assert (job.failed_at, job.definition_id, job.definition_version) == (at(5), "flow", 3)

    async with store.session() as tx:
        # sightings before forget_before are dropped, but never the one being written
        await tx.record_workers(
            worker_id="w2", job_types=["pay"], seen_at=at(10), forget_before=at(9)
        )
        queues = {q.job_type: q for q in await tx.job_queues(seen_since=at(0))}
    assert queues["pay"].workers == [WorkerSeen(worker_id="w2", seen_at=at(10))]
    assert "idle" not in queues


async def test_audit_of_an_instance_and_chain_links(store: Store) -> None:
    parent, child, other = make_instance(), make_instance(), make_instance()

    def entry(instance_id: str, kind: str, **detail: Any) -> Audit:
        return Audit(
            entry=AuditEntry(kind=kind, actor="engine", instance_id=instance_id, detail=detail)
        )

    await apply(
        store,
        *(InsertInstance(instance=i) for i in (parent, child, other)),
        entry(parent.id, "instance-started"),
        entry(other.id, "instance-started"),
        entry(parent.id, "instance-completed", endStepId="end"),
        entry(parent.id, "instance-chained", parent=parent.id, child=child.id),
    )
    async with store.session() as tx:
        audit = await tx.instance_audit(parent.id, after_id=0, limit=10)
        assert [a.entry.kind for a in audit] == [
            "instance-started",
            "instance-completed",
            "instance-chained",
        ]
        assert audit[1].entry.detail == {"endStepId": "end"}
        assert audit[0].id < audit[1].id < audit[2].id
        assert all(a.at.tzinfo is not None for a in audit)
        after = await tx.instance_audit(parent.id, after_id=audit[0].id, limit=1)
        assert [a.id for a in after] == [audit[1].id]
        assert (await tx.chain_links(parent.id)).children == [child.id]
        links = await tx.chain_links(child.id)
        assert (links.parent, links.children) == (parent.id, [])
        links = await tx.chain_links(other.id)
        assert (links.parent, links.children) == (None, [])
