"""What the services need from storage. ``store/postgres`` implements these protocols."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Generic, Protocol, TypeVar

import attrs

from rochallor_server.engine.commands import Command
from rochallor_server.engine.instance import InstanceState
from rochallor_server.engine.model import (
    AuditEntry,
    DefinitionRecord,
    Instance,
    InstanceStatus,
    Job,
    JsonObject,
    StepExecution,
    Timer,
    UserTask,
)

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class PendingChain:
    """A chained start a parent's final transaction asked for, not made yet."""

    id: int
    parent_instance_id: str
    definition_id: str
    variables: JsonObject
    business_key: str | None


@attrs.frozen(kw_only=True)
class LoadedJob:
    """A job as an event about it reads it, with its instance's state."""

    job: Job
    state: InstanceState | None
    """The job's instance as :meth:`Session.load_instance` reads it; ``None`` if it is gone."""


@attrs.frozen(kw_only=True)
class Page(Generic[T]):
    items: list[T]
    total: int


@attrs.frozen(kw_only=True)
class InstanceFilter:
    definition_id: str | None = None
    status: str | None = None
    business_key: str | None = None
    definition_version: int | None = None
    started_after: dt.datetime | None = None
    """Inclusive."""
    started_before: dt.datetime | None = None
    """Exclusive."""


@attrs.frozen(kw_only=True)
class VersionStats:
    """A definition version and how many of its instances are in each status."""

    id: str
    version: int
    name: str
    uploaded_at: dt.datetime
    instances: dict[str, int]


@attrs.frozen(kw_only=True)
class AuditRecord:
    """An audit log row as stored."""

    id: int
    at: dt.datetime
    entry: AuditEntry


@attrs.frozen(kw_only=True)
class ChainLinks:
    """The instance a chained instance was started from, and those chained from it."""

    parent: str | None
    children: list[str]


@attrs.frozen(kw_only=True)
class WorkerSeen:
    worker_id: str
    seen_at: dt.datetime


@attrs.frozen(kw_only=True)
class JobQueue:
    """One job type: open jobs, the oldest waiting one, exhausted jobs, recent workers."""

    job_type: str
    unlocked: int
    locked: int
    oldest_unlocked_at: dt.datetime | None
    exhausted: int
    """Jobs whose retries ran out and whose instance is still FAILED by them (incidents)."""
    workers: list[WorkerSeen]
    """Most recently seen first."""


@attrs.frozen(kw_only=True)
class ExhaustedJob:
    """A job whose retries ran out, failing its (still FAILED) instance: an incident."""

    id: str
    job_type: str
    instance_id: str
    step_id: str
    worker_id: str | None
    failed_at: dt.datetime
    error_message: str | None
    definition_id: str
    definition_version: int


class Session(Protocol):
    """Every method runs inside one database transaction."""

    # definitions
    async def lock_definition(self, definition_id: str) -> None:
        """Serialise uploads of one definition id until the transaction ends."""
        ...

    async def latest_definition(self, definition_id: str) -> DefinitionRecord | None: ...
    async def latest_versions(self, definition_ids: Sequence[str]) -> dict[str, int]:
        """The highest version number of each existing definition id, without the documents."""
        ...

    async def definition(self, definition_id: str, version: int) -> DefinitionRecord | None: ...
    async def insert_definition(
        self, *, document: JsonObject, definition_id: str, name: str, uploaded_at: dt.datetime
    ) -> DefinitionRecord:
        """Store the next version (``max + 1``) of ``definition_id``; serialised per id."""
        ...

    async def list_definitions(
        self, *, keyword: str | None, offset: int, limit: int
    ) -> Page[DefinitionRecord]: ...

    # instances (reads)
    async def get_instance(self, instance_id: str) -> Instance | None: ...
    async def list_instances(
        self, *, filter: InstanceFilter, offset: int, limit: int
    ) -> Page[Instance]: ...
    async def history(self, instance_id: str) -> list[StepExecution]: ...

    # the operations console (reads, plus the record of polling workers)
    async def count_instances(self, *, filter: InstanceFilter) -> dict[str, int]:
        """Instances matching ``filter`` (its ``status`` ignored) per status; absent = 0."""
        ...

    async def definition_versions(self, definition_id: str) -> list[VersionStats]:
        """Every version of a definition, oldest first (empty when the id is unknown)."""
        ...

    async def instance_audit(
        self, instance_id: str, *, after_id: int, limit: int
    ) -> list[AuditRecord]: ...
    async def chain_links(self, instance_id: str) -> ChainLinks: ...
    async def job_queues(self, *, seen_since: dt.datetime) -> list[JobQueue]:
        """Every job type with open or exhausted jobs or recently seen workers, by name."""
        ...

    async def exhausted_jobs(
        self, *, job_type: str | None, offset: int, limit: int
    ) -> Page[ExhaustedJob]: ...
    async def record_workers(
        self,
        *,
        worker_id: str,
        job_types: Sequence[str],
        seen_at: dt.datetime,
        forget_before: dt.datetime,
    ) -> None:
        """Note that ``worker_id`` polled ``job_types``; forget workers not seen since
        ``forget_before``."""
        ...

    # loading an event's state: no row locks, ``apply`` checks the instance's revision
    async def load_instance(self, instance_id: str) -> InstanceState | None:
        """The instance (with its ``revision``) and its ``RUNNING`` executions, in one read."""
        ...

    async def load_job_events(self, job_ids: Sequence[str]) -> dict[str, LoadedJob]:
        """Each existing job with its instance as :meth:`load_instance` has it (``None`` if the
        instance does not exist), in one read, by job id."""
        ...

    async def get_job(self, job_id: str) -> Job | None: ...
    async def open_user_task(self, instance_id: str, step_id: str) -> UserTask | None: ...
    async def get_timer(self, timer_id: str) -> Timer | None: ...

    # jobs (dispatch)
    async def claim_jobs(
        self,
        *,
        worker_id: str,
        job_types: Sequence[str],
        limit: int,
        now: dt.datetime,
        lease_expires_at: dt.datetime,
    ) -> list[Job]:
        """One ``UPDATE … FOR UPDATE SKIP LOCKED … RETURNING``; oldest jobs first."""
        ...

    async def release_jobs(self, *, job_ids: Sequence[str], worker_id: str) -> None:
        """Jobs claimed by ``worker_id`` and not handed out, back to ``UNLOCKED`` (guarded: a
        job no longer ``LOCKED`` by that worker is left alone)."""
        ...

    async def extend_lease(
        self, *, job_id: str, worker_id: str, lease_expires_at: dt.datetime
    ) -> dt.datetime | None:
        """New expiry if ``worker_id`` holds the job's lock, else ``None``."""
        ...

    async def reclaim_expired_leases(self, *, now: dt.datetime, limit: int) -> list[Job]:
        """Expired ``LOCKED`` jobs back to ``UNLOCKED`` (retries untouched).

        Returns the jobs as they were before the reclaim (``LOCKED``, with their worker)."""
        ...

    async def due_timers(self, *, now: dt.datetime, limit: int) -> list[Timer]:
        """PENDING timers with ``fire_at <= now``, oldest first (read without locking)."""
        ...

    async def next_pending_chain(self) -> PendingChain | None:
        """The oldest chained start not made yet, locked until the transaction ends; requests
        other transactions hold are skipped."""
        ...

    async def delete_pending_chain(self, chain_id: int) -> None:
        """Forget a chained start (in the transaction that made it)."""
        ...

    # writes
    async def apply_events(self, events: Sequence[Sequence[Command]], *, audit: bool) -> list[bool]:
        """Persist the commands of some events at once; one result per event.

        Each event's commands take effect as if applied in order. An event that saves an
        existing instance (``SaveInstance``) applies only if the stored instance is still at
        the ``revision`` the event read, which the save bumps; otherwise none of its commands
        is written and its result is ``False`` (it must be decided again on fresh state). The
        other events are not affected. At most one event per instance. ``ChainNext`` is not a
        store command.
        """
        ...


class Store(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[Session]: ...

    def session(self) -> AbstractAsyncContextManager[Session]:
        """Like :meth:`transaction`, but every statement commits on its own.

        For operations whose every write is one atomic statement (claiming jobs, events, which
        write with one ``apply`` guarded by the instance's revision): it saves the
        ``BEGIN``/``COMMIT`` round trips on the hottest paths.
        """
        ...

    def advisory_lock(self, key: int) -> AbstractAsyncContextManager[bool]:
        """Try a session advisory lock, held while the context is open; ``False`` if taken."""
        ...

    async def ping(self) -> None:
        """Return if the database answers now; raise ``StorageUnavailable`` otherwise."""
        ...

    async def wait_for_jobs(self, job_types: Sequence[str], timeout: float) -> None:  # noqa: ASYNC109
        """Return when a job of one of ``job_types`` may have become claimable, or on timeout."""
        ...

    async def close(self) -> None: ...


@attrs.frozen(kw_only=True)
class OutboxRow:
    """One ``dispatch_outbox`` row: a ``JobDispatchEvent`` waiting to be published."""

    id: str
    job_id: str
    instance_id: str
    job_type: str
    payload: bytes
    created_at: dt.datetime


class OutboxBatch(Protocol):
    """The relay's drain transaction: rows stay locked (and unpublished) until it commits."""

    async def rows(self, *, held_job_types: Sequence[str], limit: int) -> list[OutboxRow]:
        """Up to ``limit`` rows in drain order, without the rows of ``held_job_types`` and
        without the rows of an instance queued behind one of those."""
        ...

    async def published(self, rows: Sequence[OutboxRow], *, audit: bool) -> None:
        """Delete published rows (with one audit row each when ``audit``)."""
        ...


class OutboxLeadership(Protocol):
    """A dedicated database session holding the relay's advisory lock."""

    def batch(self) -> AbstractAsyncContextManager[OutboxBatch]:
        """A drain transaction on the session; its queries fail once the session is gone."""
        ...

    async def backlog(self) -> tuple[int, dt.datetime | None]:
        """Rows waiting, and the creation time of the oldest."""
        ...

    async def release(self) -> None:
        """Unlock (best effort) and close the session."""
        ...


class OutboxStore(Protocol):
    """What the ``kafka_outbox`` relay and its start-up checks need from storage."""

    async def lead_outbox(self, key: int) -> OutboxLeadership | None:
        """Take the advisory lock ``key`` on a dedicated session; ``None`` if it is taken."""
        ...

    async def outbox_table_exists(self) -> bool: ...
    async def service_task_job_types(self) -> list[str]:
        """The job type of every SERVICE_TASK step of every stored definition version."""
        ...


__all__ = [
    "AuditRecord",
    "ChainLinks",
    "ExhaustedJob",
    "InstanceFilter",
    "InstanceStatus",
    "JobQueue",
    "LoadedJob",
    "OutboxBatch",
    "OutboxLeadership",
    "OutboxRow",
    "OutboxStore",
    "Page",
    "PendingChain",
    "Session",
    "Store",
    "VersionStats",
    "WorkerSeen",
]
