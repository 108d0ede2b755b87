"""Builders of domain records for the store tests (ids unique across a test session)."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from rochallor_server.engine.model import (
    ExecutionStatus,
    Instance,
    InstanceStatus,
    Job,
    JobStatus,
    StepExecution,
    Timer,
)

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
LEASE = dt.timedelta(seconds=30)
_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}{next(_ids):06d}"


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def make_instance(**changes: Any) -> Instance:
    fields: dict[str, Any] = {
        "id": new_id("I"),
        "definition_id": "order",
        "definition_version": 1,
        "status": InstanceStatus.ACTIVE,
        "started_at": T0,
    }
    return Instance(**{**fields, **changes})


def make_execution(instance: Instance, step_id: str = "task", **changes: Any) -> StepExecution:
    fields: dict[str, Any] = {
        "id": new_id("E"),
        "instance_id": instance.id,
        "step_id": step_id,
        "step_type": "SERVICE_TASK",
        "attempt_number": 1,
        "status": ExecutionStatus.RUNNING,
        "started_at": T0,
    }
    return StepExecution(**{**fields, **changes})


def make_job(execution: StepExecution, job_type: str = "charge", **changes: Any) -> Job:
    fields: dict[str, Any] = {
        "id": new_id("J"),
        "instance_id": execution.instance_id,
        "step_execution_id": execution.id,
        "step_id": execution.step_id,
        "job_type": job_type,
        "status": JobStatus.UNLOCKED,
        "retries_remaining": 2,
        "payload": {"amount": 10},
        "created_at": T0,
    }
    return Job(**{**fields, **changes})


def make_timer(execution: StepExecution, **changes: Any) -> Timer:
    fields: dict[str, Any] = {
        "id": new_id("T"),
        "instance_id": execution.instance_id,
        "step_execution_id": execution.id,
        "target_step_id": "x",
        "fire_at": at(60),
        "interrupting": False,
    }
    return Timer(**{**fields, **changes})
