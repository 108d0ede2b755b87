"""kafka_outbox mode without a broker or a database: which jobs get an outbox row, and the
record built for it (the rows written are tested on PostgreSQL in
``tests/integration/test_service_dispatch.py``, the broker in ``tests_kafka``)."""

from __future__ import annotations

import datetime as dt

import attrs

from rochallor_server._gen.workflow import v1 as pb
from rochallor_server.dispatch.kafka_outbox import event
from rochallor_server.engine import commands as cmd
from rochallor_server.engine.model import Job, JobStatus

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
