"""An in-memory :class:`~rochallor_server.service.ports.Store` for fast service tests.

It keeps the rows of the PostgreSQL schema as frozen engine models in dicts, one per table,
and mirrors the statements of ``store/postgres/queries.sql`` one method (or one ``apply`` case)
each, the way procrastinate's ``InMemoryConnector`` mirrors its SQL by query name.

Transactions are serialised by one :class:`asyncio.Lock`: at most one is open at a time, so
there is nothing to isolate beyond "all or nothing". Each transaction works on a
copy-on-write view of the committed tables (a table is copied on its first write) that
replaces the committed tables at exit only when the block raised nothing. Row locks
(``FOR UPDATE``, ``SKIP LOCKED``) are therefore plain reads here.

Long polls are woken at commit, like ``NOTIFY`` in PostgreSQL, for every job type that an
insert, a retry or a lease reclaim made claimable. :meth:`InMemoryStore.wait_for_jobs`
never takes the transaction lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, assert_never

import attrs

from rochallor_server.engine.commands import (
    Audit,
    CancelOpenWork,
    ChainNext,
    Command,
    CompleteJob,
    CompleteUserTask,
    EnqueueDispatch,
    FailJob,
    FinishExecution,
    InsertExecution,
    InsertInstance,
    InsertJob,
    InsertTimer,
    InsertUserTask,
    MarkTimerFired,
    RetryJob,
    SaveInstance,
)
from rochallor_server.engine.instance import InstanceState
from rochallor_server.engine.model import (
    AuditEntry,
    DefinitionRecord,
    ExecutionStatus,
    Instance,
    Job,
    JobStatus,
    JsonObject,
    StepExecution,
    Timer,
    TimerStatus,
    UserTask,
    UserTaskStatus,
)
from rochallor_server.errors import StorageError
from rochallor_server.service import ports

_V = TypeVar("_V")


@attrs.frozen(kw_only=True)
class UserTaskResult:
    """The ``user_task`` columns written on completion that :class:`UserTask` does not carry."""

    result: JsonObject
    completed_by: str | None
    completed_at: dt.datetime


@attrs.define(kw_only=True)
class MemoryTables:
    """The committed rows, table by table. Read them in tests; never mutate them.

    The extra dicts hold the columns that the engine models leave out (snapshots, end times,
    task results), keyed by the row id.
    """

    definitions: dict[str, tuple[DefinitionRecord, ...]] = attrs.field(factory=dict)
    """All versions of each definition id, oldest first."""
    instances: dict[str, Instance] = attrs.field(factory=dict)
    executions: dict[str, StepExecution] = attrs.field(factory=dict)
    input_snapshots: dict[str, JsonObject] = attrs.field(factory=dict)
    output_snapshots: dict[str, JsonObject | None] = attrs.field(factory=dict)
    jobs: dict[str, Job] = attrs.field(factory=dict)
    job_ended_at: dict[str, dt.datetime] = attrs.field(factory=dict)
    user_tasks: dict[str, UserTask] = attrs.field(factory=dict)
    user_task_results: dict[str, UserTaskResult] = attrs.field(factory=dict)
    timers: dict[str, Timer] = attrs.field(factory=dict)
    audit_log: tuple[AuditEntry, ...] = ()
    pending_chains: dict[int, ports.PendingChain] = attrs.field(factory=dict)
    dispatch_outbox: tuple[EnqueueDispatch, ...] = ()
    """``kafka_outbox`` mode's rows, in insert order (nothing relays them here)."""
    audit_times: tuple[dt.datetime, ...] = ()
    """When each ``audit_log`` entry was written (its id is its position + 1)."""
    workers_seen: dict[tuple[str, str], dt.datetime] = attrs.field(factory=dict)
    """``(job_type, worker_id)`` → last seen."""


def _deep(value: _V) -> _V:
    """A private copy of a JSON value, as a database would store it."""
    return copy.deepcopy(value)


def _by_age(jobs: Iterable[Job]) -> list[Job]:
    return sorted(jobs, key=lambda job: (job.created_at, job.id))


def _matches(keyword: str, *texts: str) -> bool:
    """``ILIKE '%keyword%'`` with the keyword taken literally."""
    needle = keyword.lower()
    return any(needle in text.lower() for text in texts)


class InMemorySession:
    """One transaction's view of the tables; see the module docstring for the isolation."""

    def __init__(self, committed: MemoryTables) -> None:
        # A new container over the same (shared, read-only) dicts; _write() copies a table.
        self.tables = copy.copy(committed)
        self._copied: set[str] = set()
        self.woken_job_types: set[str] = set()
        """Job types made claimable by this transaction (woken at commit)."""

    def _write(self, table: str) -> dict[Any, Any]:
        """The writable copy of ``table`` (copied on its first write in this transaction)."""
        if table not in self._copied:
            setattr(self.tables, table, dict(getattr(self.tables, table)))
            self._copied.add(table)
        rows: dict[Any, Any] = getattr(self.tables, table)
        return rows

    def _update(self, table: str, row_id: str, change: Callable[[Any], Any]) -> None:
        """``UPDATE … WHERE id = row_id``: nothing happens when the row does not exist."""
        if row_id in getattr(self.tables, table):
            rows = self._write(table)
            rows[row_id] = change(rows[row_id])

    def _insert(self, table: str, row_id: str, row: object) -> None:
        if row_id in getattr(self.tables, table):
            raise StorageError(f"duplicate key in {table}: {row_id!r}")
        self._write(table)[row_id] = row

    def _require(self, table: str, row_id: str, referenced_by: str) -> None:
        """A foreign key of the schema."""
        if row_id not in getattr(self.tables, table):
            raise StorageError(f"{referenced_by} references a missing {table} row {row_id!r}")

    # definitions

    async def lock_definition(self, definition_id: str) -> None:
        return None  # transactions are serialised already

    async def latest_definition(self, definition_id: str) -> DefinitionRecord | None:
        versions = self.tables.definitions.get(definition_id, ())
        return versions[-1] if versions else None

    async def latest_versions(self, definition_ids: Sequence[str]) -> dict[str, int]:
        versions = {i: self.tables.definitions.get(i, ()) for i in definition_ids}
        return {i: found[-1].version for i, found in versions.items() if found}

    async def definition(self, definition_id: str, version: int) -> DefinitionRecord | None:
        for record in self.tables.definitions.get(definition_id, ()):
            if record.version == version:
                return record
        return None

    async def insert_definition(
        self, *, document: JsonObject, definition_id: str, name: str, uploaded_at: dt.datetime
    ) -> DefinitionRecord:
        versions = self.tables.definitions.get(definition_id, ())
        record = DefinitionRecord(
            id=definition_id,
            version=max((r.version for r in versions), default=0) + 1,
            name=name,
            uploaded_at=uploaded_at,
            document=_deep(document),
        )
        self._write("definitions")[definition_id] = (*versions, record)
        return record

    async def list_definitions(
        self, *, keyword: str | None, offset: int, limit: int
    ) -> ports.Page[DefinitionRecord]:
        latest = [versions[-1] for versions in self.tables.definitions.values() if versions]
        if keyword is not None:
            latest = [r for r in latest if _matches(keyword, r.id, r.name)]
        latest.sort(key=lambda r: r.id)
        return ports.Page(items=latest[offset : offset + limit], total=len(latest))

    # instances (reads)

    async def get_instance(self, instance_id: str) -> Instance | None:
        return self.tables.instances.get(instance_id)

    async def list_instances(
        self, *, filter: ports.InstanceFilter, offset: int, limit: int
    ) -> ports.Page[Instance]:
        found = [
            i
            for i in self.tables.instances.values()
            if _selected(i, filter) and (filter.status is None or i.status.value == filter.status)
        ]
        found.sort(key=lambda i: (i.started_at, i.id), reverse=True)
        return ports.Page(items=found[offset : offset + limit], total=len(found))

    async def count_instances(self, *, filter: ports.InstanceFilter) -> dict[str, int]:
        counts: dict[str, int] = {}
        for i in self.tables.instances.values():
            if _selected(i, filter):
                counts[i.status.value] = counts.get(i.status.value, 0) + 1
        return counts

    # the operations console

    async def definition_versions(self, definition_id: str) -> list[ports.VersionStats]:
        stats = []
        for record in self.tables.definitions.get(definition_id, ()):
            version = ports.InstanceFilter(
                definition_id=definition_id, definition_version=record.version
            )
            stats.append(
                ports.VersionStats(
                    id=record.id,
                    version=record.version,
                    name=record.name,
                    uploaded_at=record.uploaded_at,
                    instances=await self.count_instances(filter=version),
                )
            )
        return stats

    async def instance_audit(
        self, instance_id: str, *, after_id: int, limit: int
    ) -> list[ports.AuditRecord]:
        found = [
            ports.AuditRecord(id=n, at=at, entry=entry)
            for n, (entry, at) in enumerate(
                zip(self.tables.audit_log, self.tables.audit_times, strict=True), start=1
            )
            if entry.instance_id == instance_id and n > after_id
        ]
        return found[: max(limit, 0)]

    async def chain_links(self, instance_id: str) -> ports.ChainLinks:
        chained = [e for e in self.tables.audit_log if e.kind == "instance-chained"]
        parents = [e.instance_id for e in chained if e.detail.get("child") == instance_id]
        return ports.ChainLinks(
            parent=parents[0] if parents else None,
            children=[str(e.detail["child"]) for e in chained if e.instance_id == instance_id],
        )

    def _exhausted(self) -> list[ports.ExhaustedJob]:
        found = []
        for job in self.tables.jobs.values():
            instance = self.tables.instances.get(job.instance_id)
            ended = self.tables.job_ended_at.get(job.id)
            if (
                job.status is JobStatus.FAILED
                and instance is not None
                and instance.status.value == "FAILED"
                and ended is not None
                and ended == instance.completed_at
            ):
                execution = self.tables.executions[job.step_execution_id]
                found.append(
                    ports.ExhaustedJob(
                        id=job.id,
                        job_type=job.job_type,
                        instance_id=job.instance_id,
                        step_id=job.step_id,
                        worker_id=job.worker_id,
                        failed_at=ended,
                        error_message=execution.failure_reason,
                        definition_id=instance.definition_id,
                        definition_version=instance.definition_version,
                    )
                )
        return found

    async def job_queues(self, *, seen_since: dt.datetime) -> list[ports.JobQueue]:
        types: dict[str, dict[str, Any]] = {}

        def of(job_type: str) -> dict[str, Any]:
            return types.setdefault(
                job_type, {"unlocked": 0, "locked": 0, "oldest": None, "exhausted": 0, "seen": []}
            )

        for job in self.tables.jobs.values():
            if job.status is JobStatus.UNLOCKED:
                queue = of(job.job_type)
                queue["unlocked"] += 1
                if queue["oldest"] is None or job.created_at < queue["oldest"]:
                    queue["oldest"] = job.created_at
            elif job.status is JobStatus.LOCKED:
                of(job.job_type)["locked"] += 1
        for exhausted in self._exhausted():
            of(exhausted.job_type)["exhausted"] += 1
        for (job_type, worker_id), seen_at in self.tables.workers_seen.items():
            if seen_at >= seen_since:
                of(job_type)["seen"].append(ports.WorkerSeen(worker_id=worker_id, seen_at=seen_at))
        return [
            ports.JobQueue(
                job_type=job_type,
                unlocked=q["unlocked"],
                locked=q["locked"],
                oldest_unlocked_at=q["oldest"],
                exhausted=q["exhausted"],
                workers=sorted(q["seen"], key=lambda w: (-w.seen_at.timestamp(), w.worker_id)),
            )
            for job_type, q in sorted(types.items())
        ]

    async def exhausted_jobs(
        self, *, job_type: str | None, offset: int, limit: int
    ) -> ports.Page[ports.ExhaustedJob]:
        found = [j for j in self._exhausted() if job_type is None or j.job_type == job_type]
        found.sort(key=lambda j: (j.failed_at, j.id), reverse=True)
        return ports.Page(items=found[offset : offset + limit], total=len(found))

    async def record_workers(
        self,
        *,
        worker_id: str,
        job_types: Sequence[str],
        seen_at: dt.datetime,
        forget_before: dt.datetime,
    ) -> None:
        seen = self._write("workers_seen")
        for key in [k for k, at in seen.items() if at < forget_before]:
            if not (key[1] == worker_id and key[0] in job_types):
                del seen[key]
        for job_type in job_types:
            key = (job_type, worker_id)
            seen[key] = max(seen.get(key, seen_at), seen_at)

    async def history(self, instance_id: str) -> list[StepExecution]:
        return sorted(
            (e for e in self.tables.executions.values() if e.instance_id == instance_id),
            key=lambda e: (e.started_at, e.id),
        )

    # loading an event's state

    async def load_instance(self, instance_id: str) -> InstanceState | None:
        instance = self.tables.instances.get(instance_id)
        if instance is None:
            return None
        running = [
            e for e in await self.history(instance_id) if e.status is ExecutionStatus.RUNNING
        ]
        return InstanceState(instance=instance, running=tuple(running))

    async def load_job_events(self, job_ids: Sequence[str]) -> dict[str, ports.LoadedJob]:
        jobs = [job for i in job_ids if (job := self.tables.jobs.get(i)) is not None]
        return {
            job.id: ports.LoadedJob(job=job, state=await self.load_instance(job.instance_id))
            for job in jobs
        }

    async def get_job(self, job_id: str) -> Job | None:
        return self.tables.jobs.get(job_id)

    async def open_user_task(self, instance_id: str, step_id: str) -> UserTask | None:
        open_tasks = [
            t
            for t in self.tables.user_tasks.values()
            if t.instance_id == instance_id
            and t.step_id == step_id
            and t.status is UserTaskStatus.OPEN
        ]
        return max(open_tasks, key=lambda t: (t.created_at, t.id), default=None)

    async def get_timer(self, timer_id: str) -> Timer | None:
        return self.tables.timers.get(timer_id)

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
        if limit <= 0 or not job_types:
            return []
        types = set(job_types)
        candidates = _by_age(
            j
            for j in self.tables.jobs.values()
            if j.status is JobStatus.UNLOCKED and j.job_type in types
        )[:limit]
        claimed = [
            attrs.evolve(
                j,
                status=JobStatus.LOCKED,
                worker_id=worker_id,
                locked_at=now,
                lock_expires_at=lease_expires_at,
            )
            for j in candidates
        ]
        if claimed:
            jobs = self._write("jobs")
            for job in claimed:
                jobs[job.id] = job
        return claimed

    async def release_jobs(self, *, job_ids: Sequence[str], worker_id: str) -> None:
        for job_id in job_ids:
            job = self.tables.jobs.get(job_id)
            if job is None or job.status is not JobStatus.LOCKED or job.worker_id != worker_id:
                continue
            self._write("jobs")[job_id] = attrs.evolve(
                job,
                status=JobStatus.UNLOCKED,
                worker_id=None,
                locked_at=None,
                lock_expires_at=None,
            )

    async def extend_lease(
        self, *, job_id: str, worker_id: str, lease_expires_at: dt.datetime
    ) -> dt.datetime | None:
        job = self.tables.jobs.get(job_id)
        if job is None or job.status is not JobStatus.LOCKED or job.worker_id != worker_id:
            return None
        self._write("jobs")[job_id] = attrs.evolve(job, lock_expires_at=lease_expires_at)
        return lease_expires_at

    async def reclaim_expired_leases(self, *, now: dt.datetime, limit: int) -> list[Job]:
        if limit <= 0:
            return []
        expired = sorted(
            (
                j
                for j in self.tables.jobs.values()
                if j.status is JobStatus.LOCKED
                and j.lock_expires_at is not None
                and j.lock_expires_at < now
            ),
            key=lambda j: (j.lock_expires_at, j.id),
        )[:limit]
        if expired:
            jobs = self._write("jobs")
            for job in expired:
                jobs[job.id] = _unlocked(job, job.retries_remaining)
                self.woken_job_types.add(job.job_type)
        return _by_age(expired)

    async def due_timers(self, *, now: dt.datetime, limit: int) -> list[Timer]:
        if limit <= 0:
            return []
        due = (
            t
            for t in self.tables.timers.values()
            if t.status is TimerStatus.PENDING and t.fire_at <= now
        )
        return sorted(due, key=lambda t: (t.fire_at, t.id))[:limit]

    # chaining

    async def next_pending_chain(self) -> ports.PendingChain | None:
        chains = self.tables.pending_chains
        return chains[min(chains)] if chains else None  # transactions are serialised

    async def delete_pending_chain(self, chain_id: int) -> None:
        if chain_id in self.tables.pending_chains:
            del self._write("pending_chains")[chain_id]

    # writes

    async def apply_events(self, events: Sequence[Sequence[Command]], *, audit: bool) -> list[bool]:
        return [self._apply_event(commands, audit=audit) for commands in events]

    def _apply_event(self, commands: Sequence[Command], *, audit: bool) -> bool:
        created = {c.instance.id for c in commands if isinstance(c, InsertInstance)}
        for command in commands:
            if isinstance(command, SaveInstance) and command.instance.id not in created:
                stored = self.tables.instances.get(command.instance.id)
                if stored is None or stored.revision != command.instance.revision:
                    return False  # ``WHERE revision = $expected`` matched nothing
            if isinstance(command, RetryJob):
                stored_job = self.tables.jobs.get(command.job.id)
                read = command.job
                if stored_job is not None and (
                    stored_job.status,
                    stored_job.worker_id,
                    stored_job.locked_at,
                ) != (read.status, read.worker_id, read.locked_at):
                    return False  # the retry applies only to the job as the event read it
        for command in commands:
            self._apply(command, audit=audit, created=created)
        return True

    def _apply(self, command: Command, *, audit: bool, created: set[str]) -> None:
        """The one statement of ``queries.sql`` that persists ``command``."""
        match command:
            case InsertInstance(instance=i):
                self._insert("instances", i.id, _with_copied_json(i))
            case SaveInstance(instance=i):
                saved = _with_copied_json(i)
                self._update(
                    "instances",
                    i.id,
                    lambda row: attrs.evolve(
                        row,
                        status=saved.status,
                        current_step_ids=saved.current_step_ids,
                        variables=saved.variables,
                        join_arrivals=saved.join_arrivals,
                        step_attempts=saved.step_attempts,
                        completed_at=saved.completed_at,
                        failure_reason=saved.failure_reason,
                        # a new instance is inserted in its final state, at revision 0
                        revision=row.revision + (i.id not in created),
                    ),
                )
            case InsertExecution(execution=e, input_snapshot=snapshot, output_snapshot=output):
                self._require("instances", e.instance_id, f"step_execution {e.id}")
                self._insert("executions", e.id, e)
                self._write("input_snapshots")[e.id] = _deep(snapshot)
                if output is not None:
                    self._write("output_snapshots")[e.id] = _deep(output)
            case FinishExecution():
                if command.execution_id in self.tables.executions:
                    self._write("output_snapshots")[command.execution_id] = _deep(
                        command.output_snapshot
                    )
                self._update(
                    "executions",
                    command.execution_id,
                    lambda row: attrs.evolve(
                        row,
                        status=command.status,
                        ended_at=command.ended_at,
                        failure_reason=command.failure_reason,
                    ),
                )
            case InsertJob(job=j):
                self._require("executions", j.step_execution_id, f"job {j.id}")
                self._insert("jobs", j.id, attrs.evolve(j, payload=_deep(j.payload)))
                self.woken_job_types.add(j.job_type)
            case CompleteJob() | FailJob():
                self._finish_job(command)
            case RetryJob():
                self._update(
                    "jobs",
                    command.job.id,
                    lambda row: _unlocked(row, command.retries_remaining),
                )
                if command.job.id in self.tables.jobs:
                    self.woken_job_types.add(self.tables.jobs[command.job.id].job_type)
            case InsertUserTask(task=t):
                self._require("instances", t.instance_id, f"user_task {t.id}")
                self._require("executions", t.step_execution_id, f"user_task {t.id}")
                self._insert("user_tasks", t.id, attrs.evolve(t, payload=_deep(t.payload)))
            case CompleteUserTask():
                if command.task_id in self.tables.user_tasks:
                    self._write("user_task_results")[command.task_id] = UserTaskResult(
                        result=_deep(command.result),
                        completed_by=command.completed_by,
                        completed_at=command.at,
                    )
                self._update(
                    "user_tasks",
                    command.task_id,
                    lambda row: attrs.evolve(row, status=UserTaskStatus.COMPLETED),
                )
            case InsertTimer(timer=t):
                self._require("instances", t.instance_id, f"timer {t.id}")
                self._require("executions", t.step_execution_id, f"timer {t.id}")
                self._insert("timers", t.id, t)
            case MarkTimerFired():
                self._update(
                    "timers",
                    command.timer_id,
                    lambda row: attrs.evolve(row, status=TimerStatus.FIRED),
                )
            case CancelOpenWork():
                self._cancel_open_work(command)
            case Audit(entry=entry):
                if audit:
                    copied = attrs.evolve(entry, detail=_deep(entry.detail))
                    self.tables.audit_log = (*self.tables.audit_log, copied)
                    self.tables.audit_times = (*self.tables.audit_times, dt.datetime.now(dt.UTC))
            case EnqueueDispatch():
                self._require("jobs", command.job_id, f"dispatch_outbox {command.id}")
                self.tables.dispatch_outbox = (*self.tables.dispatch_outbox, command)
            case ChainNext():
                chains = self._write("pending_chains")
                chain_id = max(chains, default=0) + 1
                chains[chain_id] = ports.PendingChain(
                    id=chain_id,
                    parent_instance_id=command.parent_instance_id,
                    definition_id=command.definition_id,
                    variables=_deep(command.variables),
                    business_key=command.business_key,
                )
            case _:
                assert_never(command)

    def _finish_job(self, command: CompleteJob | FailJob) -> None:
        status = JobStatus.COMPLETED if isinstance(command, CompleteJob) else JobStatus.FAILED
        if command.job_id not in self.tables.jobs:
            return
        self._update(
            "jobs",
            command.job_id,
            # ``coalesce($2, worker_id)``: an anonymous report keeps the recorded worker.
            lambda row: attrs.evolve(
                row, status=status, worker_id=command.worker_id or row.worker_id
            ),
        )
        self._write("job_ended_at")[command.job_id] = command.at

    def _cancel_open_work(self, command: CancelOpenWork) -> None:
        scope = None if command.execution_ids is None else set(command.execution_ids)

        def targeted(row: Job | UserTask | Timer) -> bool:
            return row.instance_id == command.instance_id and (
                scope is None or row.step_execution_id in scope
            )

        for timer in [t for t in self.tables.timers.values() if targeted(t)]:
            if timer.status is TimerStatus.PENDING:
                self._write("timers")[timer.id] = attrs.evolve(timer, status=TimerStatus.CANCELLED)
        if command.timers_only:
            return
        for job in [j for j in self.tables.jobs.values() if targeted(j)]:
            if job.status.open:
                self._write("jobs")[job.id] = attrs.evolve(job, status=JobStatus.CANCELLED)
                self._write("job_ended_at")[job.id] = command.at
        for task in [t for t in self.tables.user_tasks.values() if targeted(t)]:
            if task.status is UserTaskStatus.OPEN:
                self._write("user_tasks")[task.id] = attrs.evolve(
                    task, status=UserTaskStatus.CANCELLED
                )


def _selected(i: Instance, f: ports.InstanceFilter) -> bool:
    """The filters of ``list_instances`` but the status."""
    return (
        (f.definition_id is None or i.definition_id == f.definition_id)
        and (f.business_key is None or i.business_key == f.business_key)
        and (f.definition_version is None or i.definition_version == f.definition_version)
        and (f.started_after is None or i.started_at >= f.started_after)
        and (f.started_before is None or i.started_at < f.started_before)
    )


def _unlocked(job: Job, retries_remaining: int) -> Job:
    return attrs.evolve(
        job,
        status=JobStatus.UNLOCKED,
        worker_id=None,
        locked_at=None,
        lock_expires_at=None,
        retries_remaining=retries_remaining,
    )


def _with_copied_json(instance: Instance) -> Instance:
    return attrs.evolve(
        instance,
        variables=_deep(instance.variables),
        join_arrivals=dict(instance.join_arrivals),
        step_attempts=dict(instance.step_attempts),
    )


class InMemoryStore:
    """The store in a few dicts; every committed state is in :attr:`tables`."""

    def __init__(self) -> None:
        self.tables = MemoryTables()
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._advisory_locks: set[int] = set()
        self.transactions = 0
        """Committed transactions so far (for tests that count round trips)."""

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[InMemorySession]:
        task = asyncio.current_task()
        if task is not None and task is self._owner:
            # PostgreSQL would run it on a second connection; here it would wait for itself.
            raise RuntimeError("nested transaction on InMemoryStore")
        async with self._lock:
            self._owner = task
            try:
                tx = InMemorySession(self.tables)
                yield tx
                # Reached only when the block raised nothing: commit.
                self.tables = tx.tables
                self.transactions += 1
                self._wake(tx.woken_job_types)
            finally:
                self._owner = None

    def session(self) -> contextlib.AbstractAsyncContextManager[InMemorySession]:
        return self.transaction()

    @contextlib.asynccontextmanager
    async def advisory_lock(self, key: int) -> AsyncIterator[bool]:
        if key in self._advisory_locks:
            yield False
            return
        self._advisory_locks.add(key)
        try:
            yield True
        finally:
            self._advisory_locks.discard(key)

    async def ping(self) -> None:
        """The in-memory store is always reachable."""

    async def wait_for_jobs(self, job_types: Sequence[str], timeout: float) -> None:  # noqa: ASYNC109
        event = asyncio.Event()
        types = set(job_types)
        for job_type in types:
            self._waiters.setdefault(job_type, set()).add(event)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(timeout, 0)):
                    await event.wait()
        finally:
            for job_type in types:
                waiting = self._waiters.get(job_type)
                if waiting is not None:
                    waiting.discard(event)
                    if not waiting:
                        del self._waiters[job_type]

    def _wake(self, job_types: Iterable[str]) -> None:
        for job_type in job_types:
            for event in self._waiters.get(job_type, ()):
                event.set()

    async def close(self) -> None:
        self._wake(list(self._waiters))


if TYPE_CHECKING:
    # mypy proves here that the classes satisfy the service ports.
    def _conforms(store: InMemoryStore, tx: InMemorySession) -> tuple[ports.Store, ports.Session]:
        return store, tx


__all__ = ["InMemorySession", "InMemoryStore", "MemoryTables", "UserTaskResult"]
