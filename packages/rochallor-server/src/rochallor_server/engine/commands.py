"""What the core asks the store to do. A service applies them, in order, in one transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import attrs

from rochallor_server.engine.model import (
    AuditEntry,
    ExecutionStatus,
    Instance,
    Job,
    JobStatus,
    JsonObject,
    StepExecution,
    Timer,
    UserTask,
)


@attrs.frozen(kw_only=True)
class InsertInstance:
    instance: Instance


@attrs.frozen(kw_only=True)
class SaveInstance:
    """Write the instance row's mutable columns (status, steps, variables, counters, end)."""

    instance: Instance


@attrs.frozen(kw_only=True)
class InsertExecution:
    """A new step execution; a step that starts and ends in one event is inserted finished."""

    execution: StepExecution
    input_snapshot: JsonObject
    output_snapshot: JsonObject | None = None


@attrs.frozen(kw_only=True)
class FinishExecution:
    execution_id: str
    status: ExecutionStatus
    ended_at: dt.datetime
    failure_reason: str | None = None
    output_snapshot: JsonObject | None = None


@attrs.frozen(kw_only=True)
class InsertJob:
    job: Job


@attrs.frozen(kw_only=True)
class CompleteJob:
    job_id: str
    worker_id: str | None
    at: dt.datetime


@attrs.frozen(kw_only=True)
class RetryJob:
    """Back to claimable with one retry less; the original ``created_at`` is kept."""

    job: Job
    retries_remaining: int


@attrs.frozen(kw_only=True)
class FailJob:
    job_id: str
    worker_id: str | None
    at: dt.datetime


@attrs.frozen(kw_only=True)
class InsertUserTask:
    task: UserTask


@attrs.frozen(kw_only=True)
class CompleteUserTask:
    task_id: str
    result: JsonObject
    completed_by: str | None
    at: dt.datetime


@attrs.frozen(kw_only=True)
class InsertTimer:
    timer: Timer


@attrs.frozen(kw_only=True)
class MarkTimerFired:
    timer_id: str


@attrs.frozen(kw_only=True)
class CancelOpenWork:
    """Cancel open jobs, open user tasks and pending timers.

    Scoped to ``execution_ids`` when given, else to the whole instance.
    ``timers_only`` keeps the jobs and user tasks (a step that completed normally).
    """

    instance_id: str
    at: dt.datetime
    execution_ids: tuple[str, ...] | None = None
    timers_only: bool = False


@attrs.frozen(kw_only=True)
class Audit:
    entry: AuditEntry


@attrs.frozen(kw_only=True)
class EnqueueDispatch:
    """``kafka_outbox`` mode: an outbox row whose relay publishes ``payload`` (a serialised
    ``JobDispatchEvent``) keyed by the instance to the job type's topic."""

    id: str
    job_id: str
    instance_id: str
    job_type: str
    payload: bytes


@attrs.frozen(kw_only=True)
class ChainNext:
    """After commit: start the latest version of ``definition_id`` (auto-chaining)."""

    parent_instance_id: str
    definition_id: str
    variables: JsonObject
    business_key: str | None


Command = (
    InsertInstance
    | SaveInstance
    | InsertExecution
    | FinishExecution
    | InsertJob
    | CompleteJob
    | RetryJob
    | FailJob
    | InsertUserTask
    | CompleteUserTask
    | InsertTimer
    | MarkTimerFired
    | CancelOpenWork
    | Audit
    | EnqueueDispatch
    | ChainNext
)


def claimable_jobs(commands: Sequence[Command]) -> list[Job]:
    """The jobs an event's commands leave claimable, in command order, each with the retry
    budget it is left with: new jobs the event does not end or cancel itself, and retried
    jobs. In ``kafka_outbox`` mode each of them is dispatched (``kafka-dispatch.md`` §4.1)."""
    open_jobs: dict[str, Job] = {}
    retried: set[str] = set()  # the store's cancellations skip the jobs an event retries
    for c in commands:
        match c:
            case InsertJob(job=job) if job.status is JobStatus.UNLOCKED:
                open_jobs[job.id] = job
            case RetryJob(job=job, retries_remaining=left):
                open_jobs.pop(job.id, None)
                open_jobs[job.id] = attrs.evolve(
                    job, status=JobStatus.UNLOCKED, retries_remaining=left
                )
                retried.add(job.id)
            case CompleteJob(job_id=job_id) | FailJob(job_id=job_id):
                open_jobs.pop(job_id, None)
            case CancelOpenWork(timers_only=False) as cancel:
                scope = None if cancel.execution_ids is None else set(cancel.execution_ids)
                for job_id, job in list(open_jobs.items()):
                    if (
                        job_id not in retried
                        and job.instance_id == cancel.instance_id
                        and (scope is None or job.step_execution_id in scope)
                    ):
                        del open_jobs[job_id]
            case _:
                pass
    return list(open_jobs.values())
