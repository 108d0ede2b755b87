"""Row ↔ model mapping: ``*_from_row`` turn an asyncpg record into an engine model object.

jsonb columns arrive already decoded (the pool's codecs, see :mod:`.pool`); ``timestamptz``
arrives as an aware UTC ``datetime``. The definition document is the exception: it is kept as
text in ``raw_json`` because jsonb sorts object keys, and the order of, e.g.,
``conditionalNextSteps`` is significant.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from rochallor_server.engine.model import (
    AuditEntry,
    DefinitionRecord,
    ExecutionStatus,
    Instance,
    InstanceStatus,
    Job,
    JobStatus,
    JsonObject,
    StepExecution,
    Timer,
    TimerStatus,
    UserTask,
    UserTaskStatus,
)
from rochallor_server.service import ports

Row = asyncpg.Record


def definition_from_row(row: Row) -> DefinitionRecord:
    document = json.loads(row["raw_json"])
    return DefinitionRecord(
        id=row["id"],
        version=row["version"],
        name=row["name"],
        uploaded_at=row["uploaded_at"],
        document=document,
    )


def encode_document(document: JsonObject) -> str:
    """The ``raw_json`` text: the document with its keys in upload order (no key sorting)."""
    # ASCII escapes keep NUL characters and lone surrogates storable in a text column.
    return json.dumps(document, separators=(",", ":"), allow_nan=False)


def definition_columns(document: JsonObject) -> tuple[str | None, Any, str | None]:
    """``(description, parsed_steps, auto_start_next_workflow_id)`` derived from a document."""
    description = document.get("description")
    steps = document.get("steps", [])
    next_id = (
        document.get("nextWorkflowId") if document.get("autoStartNextWorkflow") is True else None
    )
    return (
        description if isinstance(description, str) else None,
        steps,
        next_id if isinstance(next_id, str) else None,
    )


def instance_from_row(row: Row) -> Instance:
    return Instance(
        id=row["id"],
        definition_id=row["definition_id"],
        definition_version=row["definition_version"],
        status=InstanceStatus(row["status"]),
        current_step_ids=tuple(row["current_step_ids"]),
        variables=row["variables"],
        join_arrivals=row["join_arrivals"],
        step_attempts=row["step_attempts"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        failure_reason=row["failure_reason"],
        business_key=row["business_key"],
        revision=row["revision"],
    )


def running_from_row(row: Row) -> list[StepExecution]:
    """The ``running`` column of ``load_instance``: an array of step-execution records."""
    return [
        StepExecution(
            id=id_,
            instance_id=instance_id,
            step_id=step_id,
            step_type=step_type,
            attempt_number=attempt_number,
            status=ExecutionStatus(status),
            started_at=started_at,
            ended_at=ended_at,
            failure_reason=failure_reason,
        )
        for (
            id_,
            instance_id,
            step_id,
            step_type,
            attempt_number,
            status,
            started_at,
            ended_at,
            failure_reason,
        ) in row["running"]
    ]


def execution_from_row(row: Row) -> StepExecution:
    return StepExecution(
        id=row["id"],
        instance_id=row["instance_id"],
        step_id=row["step_id"],
        step_type=row["step_type"],
        attempt_number=row["attempt_number"],
        status=ExecutionStatus(row["status"]),
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        failure_reason=row["failure_reason"],
    )


def job_from_row(row: Row, prefix: str = "") -> Job:
    """``prefix``: the prefix of the job's column names when they share a row with others."""
    return Job(
        id=row[prefix + "id"],
        instance_id=row[prefix + "instance_id"],
        step_execution_id=row[prefix + "step_execution_id"],
        step_id=row[prefix + "step_id"],
        job_type=row[prefix + "job_type"],
        status=JobStatus(row[prefix + "status"]),
        retries_remaining=row[prefix + "retries_remaining"],
        payload=row[prefix + "payload"],
        created_at=row[prefix + "created_at"],
        worker_id=row[prefix + "worker_id"],
        locked_at=row[prefix + "locked_at"],
        lock_expires_at=row[prefix + "lock_expires_at"],
    )


def user_task_from_row(row: Row) -> UserTask:
    payload = row["payload"]
    return UserTask(
        id=row["id"],
        instance_id=row["instance_id"],
        step_execution_id=row["step_execution_id"],
        step_id=row["step_id"],
        status=UserTaskStatus(row["status"]),
        # The column is nullable; the model's payload is always an object.
        payload=payload if payload is not None else {},
        created_at=row["created_at"],
    )


def timer_from_row(row: Row) -> Timer:
    return Timer(
        id=row["id"],
        instance_id=row["instance_id"],
        step_execution_id=row["step_execution_id"],
        target_step_id=row["target_step_id"],
        fire_at=row["fire_at"],
        interrupting=row["interrupting"],
        status=TimerStatus(row["status"]),
    )


# -- the operations console -------------------------------------------------------------------


def version_stats_from_row(row: Row) -> ports.VersionStats:
    return ports.VersionStats(
        id=row["id"],
        version=row["version"],
        name=row["name"],
        uploaded_at=row["uploaded_at"],
        instances={str(k): int(v) for k, v in row["counts"].items()},
    )


def audit_from_row(row: Row) -> ports.AuditRecord:
    return ports.AuditRecord(
        id=row["id"],
        at=row["at"],
        entry=AuditEntry(
            kind=row["kind"],
            actor=row["actor"],
            instance_id=row["instance_id"],
            detail=row["detail"] if row["detail"] is not None else {},
            principal=row["principal"],
        ),
    )


def job_queue_from_row(row: Row) -> ports.JobQueue:
    return ports.JobQueue(
        job_type=row["job_type"],
        unlocked=row["unlocked"],
        locked=row["locked"],
        oldest_unlocked_at=row["oldest_unlocked_at"],
        exhausted=row["exhausted"],
        workers=[
            ports.WorkerSeen(worker_id=w, seen_at=at)
            for w, at in zip(row["workers"], row["seen_at"], strict=True)
        ],
    )


def exhausted_job_from_row(row: Row) -> ports.ExhaustedJob:
    return ports.ExhaustedJob(
        id=row["id"],
        job_type=row["job_type"],
        instance_id=row["instance_id"],
        step_id=row["step_id"],
        worker_id=row["worker_id"],
        failed_at=row["ended_at"],
        error_message=row["failure_reason"],
        definition_id=row["definition_id"],
        definition_version=row["definition_version"],
    )
