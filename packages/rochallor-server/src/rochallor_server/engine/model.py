"""Domain records of the engine (frozen attrs). Timestamps are always timezone-aware UTC.

``variables`` maps hold plain JSON values; they are never mutated after construction (the core
builds new dicts).
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import attrs

JsonObject = dict[str, Any]
"""A decoded JSON object. Its values are JSON values, typed ``Any``: they come from the wire
and are only passed on, stored or handed to the expression language, which checks them."""


def _aware(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        raise ValueError(f"{attribute.name} must be timezone-aware")


class InstanceStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    WAITING = "WAITING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({InstanceStatus.COMPLETED, InstanceStatus.FAILED, InstanceStatus.CANCELLED})


class ExecutionStatus(enum.StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


class JobStatus(enum.StrEnum):
    UNLOCKED = "UNLOCKED"
    LOCKED = "LOCKED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def open(self) -> bool:
        return self in (JobStatus.UNLOCKED, JobStatus.LOCKED)


class UserTaskStatus(enum.StrEnum):
    OPEN = "OPEN"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


class TimerStatus(enum.StrEnum):
    PENDING = "PENDING"
    FIRED = "FIRED"
    CANCELLED = "CANCELLED"


@attrs.frozen(kw_only=True)
class Instance:
    id: str
    definition_id: str
    definition_version: int
    status: InstanceStatus
    current_step_ids: tuple[str, ...] = ()
    variables: JsonObject = attrs.field(factory=dict)
    join_arrivals: dict[str, int] = attrs.field(factory=dict)
    step_attempts: dict[str, int] = attrs.field(factory=dict)
    started_at: dt.datetime = attrs.field(validator=_aware)
    completed_at: dt.datetime | None = attrs.field(default=None, validator=_aware)
    failure_reason: str | None = None
    business_key: str | None = None
    revision: int = 0
    """The stored row's revision, bumped by every event that writes the instance: an event
    applies only at the revision it read (optimistic concurrency). Not part of the API."""


@attrs.frozen(kw_only=True)
class StepExecution:
    id: str
    instance_id: str
    step_id: str
    step_type: str
    attempt_number: int
    status: ExecutionStatus
    started_at: dt.datetime = attrs.field(validator=_aware)
    ended_at: dt.datetime | None = attrs.field(default=None, validator=_aware)
    failure_reason: str | None = None


@attrs.frozen(kw_only=True)
class Job:
    id: str
    instance_id: str
    step_execution_id: str
    step_id: str
    job_type: str
    status: JobStatus
    retries_remaining: int
    payload: JsonObject = attrs.field(factory=dict)
    created_at: dt.datetime = attrs.field(validator=_aware)
    worker_id: str | None = None
    locked_at: dt.datetime | None = attrs.field(default=None, validator=_aware)
    lock_expires_at: dt.datetime | None = attrs.field(default=None, validator=_aware)


@attrs.frozen(kw_only=True)
class UserTask:
    id: str
    instance_id: str
    step_execution_id: str
    step_id: str
    status: UserTaskStatus
    payload: JsonObject = attrs.field(factory=dict)
    created_at: dt.datetime = attrs.field(validator=_aware)


@attrs.frozen(kw_only=True)
class Timer:
    id: str
    instance_id: str
    step_execution_id: str
    target_step_id: str
    fire_at: dt.datetime = attrs.field(validator=_aware)
    interrupting: bool
    status: TimerStatus = TimerStatus.PENDING


@attrs.frozen(kw_only=True)
class DefinitionRecord:
    """A stored definition version: the summary fields plus the uploaded document."""

    id: str
    version: int
    name: str
    uploaded_at: dt.datetime = attrs.field(validator=_aware)
    document: JsonObject
    """The definition JSON in upload order (``version`` not included)."""


@attrs.frozen(kw_only=True)
class AuditEntry:
    kind: str
    actor: str
    instance_id: str | None
    detail: JsonObject
    principal: str | None = None
    """The credential whose request caused the entry (``key:<id>``, ``jwt:<subject>``)."""
