"""kafka_outbox mode without a broker: which jobs get an outbox row, and the record built
for it (the broker tests are in ``tests_kafka``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from rochallor_server._gen.workflow import v1 as pb
from rochallor_server.config import EngineSettings
from rochallor_server.dispatch.kafka_outbox import event
from rochallor_server.engine import commands as cmd
from rochallor_server.engine.model import Job, JobStatus
from rochallor_server.metrics import Metrics
from rochallor_server.service.workflow_service import WorkflowService
from rochallor_server.testing import FixedClock, InMemoryStore, SequentialIds

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def job(job_id: str, *, execution: str = "e1", instance: str = "i1", retries: int = 2) -> Job:
    return Job(
        id=job_id,
        instance_id=instance,
        step_execution_id=execution,
        step_id="s",
        job_type="charge",
        status=JobStatus.UNLOCKED,
        retries_remaining=retries,
        payload={"amount": 100},
        created_at=T0,
    )


def test_new_jobs_and_retries_are_dispatched() -> None:
    retried = attrs.evolve(job("j2"), status=JobStatus.LOCKED, worker_id="w")
    found = cmd.claimable_jobs(
        [
            cmd.InsertJob(job=job("j1")),
            cmd.RetryJob(job=retried, retries_remaining=1),
        ]
    )
    assert [(j.id, j.retries_remaining, j.status) for j in found] == [
        ("j1", 2, JobStatus.UNLOCKED),
        ("j2", 1, JobStatus.UNLOCKED),
    ]


def test_jobs_an_event_ends_itself_are_not_dispatched() -> None:
    commands: list[cmd.Command] = [
        cmd.InsertJob(job=job("j1", execution="e1")),
        cmd.InsertJob(job=job("j2", execution="e2")),
        cmd.InsertJob(job=job("j3", execution="e3", instance="other")),
        cmd.InsertJob(job=job("j4", execution="e4")),
        cmd.CancelOpenWork(instance_id="i1", at=T0, execution_ids=("e1",)),
        cmd.CancelOpenWork(instance_id="i1", at=T0, timers_only=True),
        cmd.CompleteJob(job_id="j4", worker_id=None, at=T0),
    ]
    assert [j.id for j in cmd.claimable_jobs(commands)] == ["j2", "j3"]
    cancel_all = cmd.CancelOpenWork(instance_id="i1", at=T0)
    assert [j.id for j in cmd.claimable_jobs([*commands, cancel_all])] == ["j3"]


def test_the_record_value_is_a_job_dispatch_event() -> None:
    value = event.encode(job("j1", retries=3), "01DEDUP")
    decoded = pb.JobDispatchEvent.parse(value)
    assert decoded.schema_version == 1
    assert decoded.dedup_id == "01DEDUP"
    assert (decoded.job_id, decoded.instance_id, decoded.step_execution_id) == ("j1", "i1", "e1")
    assert decoded.job_type == "charge"
    assert decoded.retries_remaining == 3
    assert decoded.job_payload == b'{"amount":100}'
    assert decoded.created_at == T0
    assert event.topic_for("charge") == "workflow.jobs.charge"
    assert event.headers("01DEDUP") == [
        ("content-type", b"application/x-protobuf; proto=workflow.v1.JobDispatchEvent"),
        ("dedup-id", b"01DEDUP"),
    ]


def _engine(store: InMemoryStore, *, kafka: bool) -> WorkflowService:
    return WorkflowService(
        store,
        settings=EngineSettings(),
        metrics=Metrics(polling=not kafka),
        clock=FixedClock(),
        ids=SequentialIds(),
        dispatch=event.encode if kafka else None,
    )


FLOW: dict[str, Any] = {
    "id": "flow",
    "name": "flow",
    "steps": [
        {
            "id": "a",
            "name": "a",
            "type": "SERVICE_TASK",
            "jobType": "charge",
            "retryCount": 1,
            "nextStep": "end",
        },
        {"id": "end", "name": "end", "type": "END"},
    ],
}


async def test_the_outbox_row_is_written_with_the_job_and_again_on_retry() -> None:
    store = InMemoryStore()
    engine = _engine(store, kafka=True)
    await engine.upload_definition(FLOW)
    instance = await engine.start_instance(
        definition_id="flow", version=None, variables={"x": 1}, business_key=None
    )
    [first] = store.tables.dispatch_outbox
    [stored] = store.tables.jobs.values()
    assert (first.job_id, first.instance_id, first.job_type) == (stored.id, instance.id, "charge")
    assert pb.JobDispatchEvent.parse(first.payload).dedup_id == first.id

    await engine.fail_job(stored.id, worker_id=None, error_message="again", retryable=True)
    _, second = store.tables.dispatch_outbox
    assert second.job_id == stored.id and second.id != first.id
    assert pb.JobDispatchEvent.parse(second.payload).retries_remaining == 0

    await engine.complete_job(stored.id, worker_id=None, variables={})
    assert len(store.tables.dispatch_outbox) == 2


async def test_polling_mode_writes_no_outbox_row() -> None:
    store = InMemoryStore()
    engine = _engine(store, kafka=False)
    await engine.upload_definition(FLOW)
    await engine.start_instance(definition_id="flow", version=None, variables={}, business_key=None)
    assert store.tables.jobs and store.tables.dispatch_outbox == ()
