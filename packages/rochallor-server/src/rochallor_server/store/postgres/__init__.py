"""The PostgreSQL store: :class:`PostgresStore` implements :class:`service.ports.Store`.

Every statement is in ``queries.sql``; rows become engine models in :mod:`.rows`. Pollers are
woken through ``LISTEN``/``NOTIFY`` on the ``rochallor_jobs`` channel (payload: the job type):
the statements that make a job claimable notify in their own transaction, so the notification
is delivered exactly when the job becomes visible (at commit).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, assert_never

import asyncpg
import attrs
from asyncpg.pool import PoolConnectionProxy

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
    DefinitionRecord,
    Instance,
    Job,
    JsonObject,
    StepExecution,
    Timer,
    UserTask,
)
from rochallor_server.errors import StorageUnavailable, TransientStorageError
from rochallor_server.service import ports
from rochallor_server.store.postgres import outbox, rows
from rochallor_server.store.postgres.pool import create_pool
from rochallor_server.store.postgres.queries import QUERIES

log = logging.getLogger(__name__)

JOBS_CHANNEL = "rochallor_jobs"

# Looked up at import so that a statement missing from queries.sql fails at once.
_LOCK_DEFINITION_ID = QUERIES["lock_definition_id"]
_INSERT_DEFINITION = QUERIES["insert_definition"]
_LATEST_DEFINITION = QUERIES["latest_definition"]
_LATEST_DEFINITION_VERSIONS = QUERIES["latest_definition_versions"]
_DEFINITION = QUERIES["definition"]
_LIST_DEFINITIONS = QUERIES["list_definitions"]
_COUNT_DEFINITIONS = QUERIES["count_definitions"]
_GET_INSTANCE = QUERIES["get_instance"]
_LOAD_INSTANCE = QUERIES["load_instance"]
_LIST_INSTANCES = QUERIES["list_instances"]
_COUNT_INSTANCES = QUERIES["count_instances"]
_COUNT_INSTANCES_BY_STATUS = QUERIES["count_instances_by_status"]
_HISTORY = QUERIES["history"]
_DEFINITION_VERSIONS = QUERIES["definition_versions"]
_INSTANCE_AUDIT = QUERIES["instance_audit"]
_CHAIN_LINKS = QUERIES["chain_links"]
_JOB_QUEUES = QUERIES["job_queues"]
_EXHAUSTED_JOBS = QUERIES["exhausted_jobs"]
_COUNT_EXHAUSTED_JOBS = QUERIES["count_exhausted_jobs"]
_RECORD_WORKERS = QUERIES["record_workers"]
_GET_JOB = QUERIES["get_job"]
_LOAD_JOB_EVENTS = QUERIES["load_job_events"]
_CLAIM_JOBS = QUERIES["claim_jobs"]
_EXTEND_LEASE = QUERIES["extend_lease"]
_RELEASE_JOBS = QUERIES["release_jobs"]
_RECLAIM_EXPIRED_LEASES = QUERIES["reclaim_expired_leases"]
_NOTIFY_JOB_TYPES = QUERIES["notify_job_types"]
_OPEN_USER_TASK = QUERIES["open_user_task"]
_GET_TIMER = QUERIES["get_timer"]
_DUE_TIMERS = QUERIES["due_timers"]
_NEXT_PENDING_CHAIN = QUERIES["next_pending_chain"]
_DELETE_PENDING_CHAIN = QUERIES["delete_pending_chain"]
_TRY_ADVISORY_LOCK = QUERIES["try_advisory_lock"]
_ADVISORY_UNLOCK = QUERIES["advisory_unlock"]
_PING = QUERIES["ping"]

# asyncpg's classes are generic only in their stubs, hence the quoted aliases.
Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"
Pool: TypeAlias = "asyncpg.Pool[Any]"


def like_pattern(keyword: str) -> str:
    """An ``ILIKE … ESCAPE '\\'`` pattern matching ``keyword`` literally as a substring."""
    escaped = keyword.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _state_from_row(row: asyncpg.Record) -> InstanceState:
    return InstanceState(
        instance=rows.instance_from_row(row), running=tuple(rows.running_from_row(row))
    )


def _by_age(jobs: list[Job]) -> list[Job]:
    return sorted(jobs, key=lambda job: (job.created_at, job.id))


# What a database that is away looks like from here: the connection refused, reset or lost
# (OSError, SQLSTATE class 08), the server shutting down or starting (57P01-57P03), no
# connection slot left (53300), or a connection asyncpg already knows to be closed.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
)
_PING_ERRORS: tuple[type[BaseException], ...] = (*_CONNECTION_ERRORS, TimeoutError)
_PING_TIMEOUT = 2.0


def _outage(exc: BaseException) -> bool:
    # an InterfaceError is a misuse of a connection unless the connection is closed
    return not isinstance(exc, asyncpg.InterfaceError) or "closed" in str(exc)


def _unavailable(exc: BaseException) -> StorageUnavailable:
    return StorageUnavailable(f"database unavailable: {type(exc).__name__}: {exc}".rstrip(": "))


@contextlib.contextmanager
def outage_as_unavailable() -> Iterator[None]:
    """Connection errors of a database that is away raise :class:`StorageUnavailable` (503)."""
    try:
        yield
    except _CONNECTION_ERRORS as exc:
        if not _outage(exc):
            raise
        raise _unavailable(exc) from exc


class PostgresSession:
    """The store's reads and writes on one connection, inside one open transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    # definitions

    async def latest_definition(self, definition_id: str) -> DefinitionRecord | None:
        row = await self._conn.fetchrow(_LATEST_DEFINITION, definition_id)
        return None if row is None else rows.definition_from_row(row)

    async def latest_versions(self, definition_ids: Sequence[str]) -> dict[str, int]:
        found = await self._conn.fetch(_LATEST_DEFINITION_VERSIONS, list(definition_ids))
        return {row["id"]: row["version"] for row in found}

    async def definition(self, definition_id: str, version: int) -> DefinitionRecord | None:
        row = await self._conn.fetchrow(_DEFINITION, definition_id, version)
        return None if row is None else rows.definition_from_row(row)

    async def lock_definition(self, definition_id: str) -> None:
        """Serialise uploads of ``definition_id`` until the transaction ends.

        Not (yet) in the port: taken before ``latest_definition``, it makes "compare with the
        latest, then insert" atomic, so two identical concurrent uploads create one version.
        """
        await self._conn.execute(_LOCK_DEFINITION_ID, definition_id)

    async def insert_definition(
        self, *, document: JsonObject, definition_id: str, name: str, uploaded_at: dt.datetime
    ) -> DefinitionRecord:
        # The transaction-scoped lock makes "max + 1" safe against a concurrent upload of the
        # same id (the unique constraint would otherwise turn the race into an error).
        await self.lock_definition(definition_id)
        description, parsed_steps, next_workflow_id = rows.definition_columns(document)
        row = await self._conn.fetchrow(
            _INSERT_DEFINITION,
            definition_id,
            name,
            description,
            rows.encode_document(document),
            parsed_steps,
            next_workflow_id,
            uploaded_at,
        )
        assert row is not None  # INSERT … SELECT over an aggregate yields exactly one row
        return rows.definition_from_row(row)

    async def list_definitions(
        self, *, keyword: str | None, offset: int, limit: int
    ) -> ports.Page[DefinitionRecord]:
        pattern = None if keyword is None else like_pattern(keyword)
        records = await self._conn.fetch(_LIST_DEFINITIONS, pattern, offset, limit)
        total = await self._conn.fetchval(_COUNT_DEFINITIONS, pattern)
        return ports.Page(items=[rows.definition_from_row(r) for r in records], total=total)

    # instances (reads)

    async def get_instance(self, instance_id: str) -> Instance | None:
        row = await self._conn.fetchrow(_GET_INSTANCE, instance_id)
        return None if row is None else rows.instance_from_row(row)

    async def list_instances(
        self, *, filter: ports.InstanceFilter, offset: int, limit: int
    ) -> ports.Page[Instance]:
        filters = (
            filter.definition_id,
            filter.status,
            filter.business_key,
            filter.definition_version,
            filter.started_after,
            filter.started_before,
        )
        records = await self._conn.fetch(_LIST_INSTANCES, *filters, offset, limit)
        total = await self._conn.fetchval(_COUNT_INSTANCES, *filters)
        return ports.Page(items=[rows.instance_from_row(r) for r in records], total=total)

    async def count_instances(self, *, filter: ports.InstanceFilter) -> dict[str, int]:
        found = await self._conn.fetch(
            _COUNT_INSTANCES_BY_STATUS,
            filter.definition_id,
            filter.business_key,
            filter.definition_version,
            filter.started_after,
            filter.started_before,
        )
        return {row["status"]: row["n"] for row in found}

    async def history(self, instance_id: str) -> list[StepExecution]:
        return [rows.execution_from_row(r) for r in await self._conn.fetch(_HISTORY, instance_id)]

    # the operations console

    async def definition_versions(self, definition_id: str) -> list[ports.VersionStats]:
        found = await self._conn.fetch(_DEFINITION_VERSIONS, definition_id)
        return [rows.version_stats_from_row(r) for r in found]

    async def instance_audit(
        self, instance_id: str, *, after_id: int, limit: int
    ) -> list[ports.AuditRecord]:
        found = await self._conn.fetch(_INSTANCE_AUDIT, instance_id, after_id, limit)
        return [rows.audit_from_row(r) for r in found]

    async def chain_links(self, instance_id: str) -> ports.ChainLinks:
        row = await self._conn.fetchrow(_CHAIN_LINKS, instance_id)
        assert row is not None  # a SELECT without FROM yields one row
        return ports.ChainLinks(parent=row["parent"], children=list(row["children"]))

    async def job_queues(self, *, seen_since: dt.datetime) -> list[ports.JobQueue]:
        found = await self._conn.fetch(_JOB_QUEUES, seen_since)
        return [rows.job_queue_from_row(r) for r in found]

    async def exhausted_jobs(
        self, *, job_type: str | None, offset: int, limit: int
    ) -> ports.Page[ports.ExhaustedJob]:
        found = await self._conn.fetch(_EXHAUSTED_JOBS, job_type, offset, limit)
        total = await self._conn.fetchval(_COUNT_EXHAUSTED_JOBS, job_type)
        return ports.Page(items=[rows.exhausted_job_from_row(r) for r in found], total=total)

    async def record_workers(
        self,
        *,
        worker_id: str,
        job_types: Sequence[str],
        seen_at: dt.datetime,
        forget_before: dt.datetime,
    ) -> None:
        await self._conn.execute(
            _RECORD_WORKERS, worker_id, list(job_types), seen_at, forget_before
        )

    # loading an event's state (no row locks: the apply statement checks the revision)

    async def load_instance(self, instance_id: str) -> InstanceState | None:
        row = await self._conn.fetchrow(_LOAD_INSTANCE, instance_id)
        return None if row is None else _state_from_row(row)

    async def load_job_events(self, job_ids: Sequence[str]) -> dict[str, ports.LoadedJob]:
        loaded: dict[str, ports.LoadedJob] = {}
        for row in await self._conn.fetch(_LOAD_JOB_EVENTS, list(job_ids)):
            job = rows.job_from_row(row, prefix="job_")
            state = None if row["id"] is None else _state_from_row(row)
            loaded[job.id] = ports.LoadedJob(job=job, state=state)
        return loaded

    async def get_job(self, job_id: str) -> Job | None:
        row = await self._conn.fetchrow(_GET_JOB, job_id)
        return None if row is None else rows.job_from_row(row)

    async def open_user_task(self, instance_id: str, step_id: str) -> UserTask | None:
        row = await self._conn.fetchrow(_OPEN_USER_TASK, instance_id, step_id)
        return None if row is None else rows.user_task_from_row(row)

    async def get_timer(self, timer_id: str) -> Timer | None:
        row = await self._conn.fetchrow(_GET_TIMER, timer_id)
        return None if row is None else rows.timer_from_row(row)

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
        records = await self._conn.fetch(
            _CLAIM_JOBS, worker_id, now, lease_expires_at, list(job_types), limit
        )
        # RETURNING gives no order guarantee; pollers expect the oldest job first.
        return _by_age([rows.job_from_row(r) for r in records])

    async def release_jobs(self, *, job_ids: Sequence[str], worker_id: str) -> None:
        await self._conn.execute(_RELEASE_JOBS, list(job_ids), worker_id)

    async def extend_lease(
        self, *, job_id: str, worker_id: str, lease_expires_at: dt.datetime
    ) -> dt.datetime | None:
        expires: dt.datetime | None = await self._conn.fetchval(
            _EXTEND_LEASE, job_id, worker_id, lease_expires_at
        )
        return expires

    async def reclaim_expired_leases(self, *, now: dt.datetime, limit: int) -> list[Job]:
        """The reclaimed jobs as they were: ``LOCKED``, with the expired lease and its worker."""
        if limit <= 0:
            return []
        jobs = [
            rows.job_from_row(r)
            for r in await self._conn.fetch(_RECLAIM_EXPIRED_LEASES, now, limit)
        ]
        if jobs:
            await self._conn.execute(_NOTIFY_JOB_TYPES, sorted({job.job_type for job in jobs}))
        return _by_age(jobs)

    async def due_timers(self, *, now: dt.datetime, limit: int) -> list[Timer]:
        if limit <= 0:
            return []
        return [rows.timer_from_row(r) for r in await self._conn.fetch(_DUE_TIMERS, now, limit)]

    # chaining

    async def next_pending_chain(self) -> ports.PendingChain | None:
        row = await self._conn.fetchrow(_NEXT_PENDING_CHAIN)
        if row is None:
            return None
        return ports.PendingChain(
            id=row["id"],
            parent_instance_id=row["parent_instance_id"],
            definition_id=row["definition_id"],
            variables=row["variables"],
            business_key=row["business_key"],
        )

    async def delete_pending_chain(self, chain_id: int) -> None:
        await self._conn.execute(_DELETE_PENDING_CHAIN, chain_id)

    # writes

    async def apply_events(self, events: Sequence[Sequence[Command]], *, audit: bool) -> list[bool]:
        document, guards = command_document(events, audit=audit)
        if document is None:
            return [True] * len(events)
        row = await self._conn.fetchrow(apply_statement(frozenset(document)), document)
        assert row is not None  # a SELECT without FROM yields one row
        saved = set(row["saved"]) if "save" in document else set()
        retried = set(row["retried"]) if "job_retries" in document else set()
        return [
            (guard.instance is None or guard.instance in saved)
            and retried.issuperset(guard.retried_jobs)
            for guard in guards
        ]


# The apply statement of a document: ``WITH`` + the ``apply_*`` fragment of each kind of row
# it has + result columns. Each fragment reads its rows from the document ($1: one array per
# kind) and writes only the rows whose guard instance (``g``) was saved, at the revision its
# event read, by ``apply_saved``; a document that saves nothing has no guards. All fragments
# see one snapshot: ``command_document`` folds what an event does to rows it inserts itself
# into those rows, and the cancellations skip the rows that the statement ends otherwise.
_FRAGMENTS = (
    ("save", "apply_saved"),
    ("instances", "apply_new_instances"),
    ("executions", "apply_new_executions"),
    ("finishes", "apply_finished_executions"),
    ("jobs", "apply_new_jobs"),
    ("outbox", "apply_new_outbox"),
    ("job_ends", "apply_ended_jobs"),
    ("job_retries", "apply_retried_jobs"),
    ("tasks", "apply_new_tasks"),
    ("task_completions", "apply_completed_tasks"),
    ("timers", "apply_new_timers"),
    ("timers_fired", "apply_fired_timers"),
    ("cancels", "apply_cancels"),
    ("cancels", "apply_cancelled_jobs"),
    ("cancels", "apply_cancelled_tasks"),
    ("cancels", "apply_cancelled_timers"),
    ("chains", "apply_chains"),
    ("audits", "apply_audits"),
)
_RESULTS = (
    ("save", "apply_result_saved"),
    ("jobs", "apply_result_woken_new"),
    ("job_retries", "apply_result_retried"),
    ("job_retries", "apply_result_woken_retried"),
)
_GUARD = "x.g IN (SELECT id FROM saved)"
_RETRY_GUARD = "x.j IN (SELECT id FROM retried_jobs)"
# Looked up at import, like the statements above.
_FRAGMENT_SQL = {block: QUERIES[block] for _, block in (*_FRAGMENTS, *_RESULTS)}


@functools.cache
def apply_statement(kinds: frozenset[str]) -> str:
    """The statement writing a document with these keys (each set of kinds is one prepared
    statement: only the fragments it needs are planned and executed)."""
    ctes = [_FRAGMENT_SQL[block] for kind, block in _FRAGMENTS if kind in kinds]
    if not ctes:
        raise ValueError(f"nothing to write in a document with {sorted(kinds)}")
    if "save" not in kinds:
        ctes = [cte.replace(_GUARD, "false") for cte in ctes]
    if "job_retries" not in kinds:
        ctes = [cte.replace(_RETRY_GUARD, "false") for cte in ctes]
    results = [_FRAGMENT_SQL[block] for kind, block in _RESULTS if kind in kinds]
    return "WITH " + ",\n".join(ctes) + "\nSELECT " + (",\n       ".join(results) or "1")


@attrs.frozen
class Guard:
    """What an event's writes depend on: the existing instance it saves (at the revision it
    read), and the existing job it retries (as it read it: status, worker, lease)."""

    instance: str | None = None
    retried_jobs: tuple[str, ...] = ()


def command_document(
    events: Sequence[Sequence[Command]], *, audit: bool
) -> tuple[dict[str, Any] | None, list[Guard]]:
    """The apply statement's document for the commands of some events (``None`` when nothing
    is written), and each event's guard (:class:`Guard`).

    The rows of an event that saves an instance are guarded by it (``g``): they are written
    only if the save applies at the revision the event read. One statement sees one snapshot,
    so it cannot update a row it inserts: a command that changes a row inserted by an earlier
    command of the same event is folded into that row here (the core itself inserts a step
    finished when it also left it; work inserted by an event and cancelled by it later is
    inserted cancelled). At most one event per guard instance.
    """
    builder = _Document()
    guards = [builder.add_event(commands, audit=audit) for commands in events]
    saved = [g.instance for g in guards if g.instance is not None]
    if len(set(saved)) != len(saved):
        raise ValueError("two events of one instance in one apply")
    return (builder.rows or None), guards


class _Document:
    """Builds a ``command_document``: one list of rows per kind, new rows indexed by id."""

    def __init__(self) -> None:
        self.rows: dict[str, Any] = {}
        self.guard: str | None = None
        self.retry_guard: tuple[str, ...] = ()
        self.new: dict[str, dict[str, dict[str, Any]]] = {}

    def add_event(self, commands: Sequence[Command], *, audit: bool) -> Guard:
        created = {c.instance.id for c in commands if isinstance(c, InsertInstance)}
        # The guard: the existing instance this event saves (a new one cannot have moved on).
        self.guard = next(
            (
                c.instance.id
                for c in commands
                if isinstance(c, SaveInstance) and c.instance.id not in created
            ),
            None,
        )
        self.new = {"instances": {}, "executions": {}, "jobs": {}, "tasks": {}, "timers": {}}
        inserted_jobs = {c.job.id for c in commands if isinstance(c, InsertJob)}
        # The jobs of existing rows it retries; the first guards the event's audit entries
        # (the core's retry outcome is one retry and its audit entry).
        self.retry_guard = tuple(
            c.job.id for c in commands if isinstance(c, RetryJob) and c.job.id not in inserted_jobs
        )
        for c in commands:
            self.add(c, audit=audit)
        return Guard(self.guard, self.retry_guard)

    def _row(self, kind: str, row: dict[str, Any]) -> None:
        row["g"] = self.guard
        if kind == "audits":
            row["j"] = self.retry_guard[0] if self.retry_guard else None
        self.rows.setdefault(kind, []).append(row)
        if kind in self.new:
            self.new[kind][row["id"]] = row

    def add(self, c: Command, *, audit: bool) -> None:
        new = self.new
        match c:
            case InsertInstance(instance=i):
                self._row("instances", _instance_row(i))
            case SaveInstance(instance=i):
                row = _instance_row(i)
                if i.id in new["instances"]:
                    new["instances"][i.id].update(row)
                else:
                    row["revision"] = i.revision
                    self._row("save", row)
            case InsertExecution(execution=e, input_snapshot=snapshot, output_snapshot=output):
                self._row(
                    "executions",
                    {
                        "id": e.id,
                        "instance_id": e.instance_id,
                        "step_id": e.step_id,
                        "step_type": e.step_type,
                        "attempt_number": e.attempt_number,
                        "status": e.status.value,
                        "started_at": e.started_at,
                        "ended_at": e.ended_at,
                        "failure_reason": e.failure_reason,
                        "input_snapshot": snapshot,
                        "output_snapshot": output,
                    },
                )
            case FinishExecution():
                finish = {
                    "id": c.execution_id,
                    "status": c.status.value,
                    "ended_at": c.ended_at,
                    "failure_reason": c.failure_reason,
                    "output_snapshot": c.output_snapshot,
                }
                if c.execution_id in new["executions"]:
                    new["executions"][c.execution_id].update(finish)
                else:
                    self._row("finishes", finish)
            case InsertJob(job=j):
                self._row(
                    "jobs",
                    {
                        "id": j.id,
                        "instance_id": j.instance_id,
                        "step_execution_id": j.step_execution_id,
                        "step_id": j.step_id,
                        "job_type": j.job_type,
                        "status": j.status.value,
                        "worker_id": j.worker_id,
                        "locked_at": j.locked_at,
                        "lock_expires_at": j.lock_expires_at,
                        "retries_remaining": j.retries_remaining,
                        "payload": j.payload,
                        "created_at": j.created_at,
                        "ended_at": None,
                    },
                )
            case CompleteJob() | FailJob():
                status = "COMPLETED" if isinstance(c, CompleteJob) else "FAILED"
                job = new["jobs"].get(c.job_id)
                if job is not None:
                    job.update(status=status, ended_at=c.at)
                    job["worker_id"] = c.worker_id or job["worker_id"]
                else:
                    ended = {"id": c.job_id, "status": status, "worker_id": c.worker_id, "at": c.at}
                    self._row("job_ends", ended)
            case RetryJob():
                job = new["jobs"].get(c.job.id)
                if job is not None:
                    job.update(
                        status="UNLOCKED",
                        worker_id=None,
                        locked_at=None,
                        lock_expires_at=None,
                        retries_remaining=c.retries_remaining,
                    )
                else:
                    # the job as the event read it: the retry applies only to that
                    expected = {
                        "status": c.job.status.value,
                        "worker_id": c.job.worker_id,
                        "locked_at": c.job.locked_at,
                    }
                    retry = {"id": c.job.id, "retries_remaining": c.retries_remaining}
                    self._row("job_retries", {**retry, **expected})
            case InsertUserTask(task=t):
                self._row(
                    "tasks",
                    {
                        "id": t.id,
                        "instance_id": t.instance_id,
                        "step_execution_id": t.step_execution_id,
                        "step_id": t.step_id,
                        "status": t.status.value,
                        "payload": t.payload,
                        "created_at": t.created_at,
                        "result": None,
                        "completed_by": None,
                        "completed_at": None,
                    },
                )
            case CompleteUserTask():
                completion = {"result": c.result, "completed_by": c.completed_by}
                task = new["tasks"].get(c.task_id)
                if task is not None:
                    task.update(completion, status="COMPLETED", completed_at=c.at)
                else:
                    self._row("task_completions", {"id": c.task_id, "at": c.at, **completion})
            case InsertTimer(timer=t):
                self._row(
                    "timers",
                    {
                        "id": t.id,
                        "instance_id": t.instance_id,
                        "step_execution_id": t.step_execution_id,
                        "target_step_id": t.target_step_id,
                        "fire_at": t.fire_at,
                        "interrupting": t.interrupting,
                        "status": t.status.value,
                    },
                )
            case MarkTimerFired():
                timer = new["timers"].get(c.timer_id)
                if timer is not None:
                    timer["status"] = "FIRED"
                else:
                    self._row("timers_fired", {"id": c.timer_id})
            case CancelOpenWork():
                self._cancel_new_work(c)
                self._row(
                    "cancels",
                    {
                        "instance_id": c.instance_id,
                        "at": c.at,
                        "execution_ids": None if c.execution_ids is None else list(c.execution_ids),
                        "timers_only": c.timers_only,
                    },
                )
            case Audit(entry=entry):
                if audit:
                    self._row(
                        "audits",
                        {
                            "actor": entry.actor,
                            "principal": entry.principal,
                            "kind": entry.kind,
                            "instance_id": entry.instance_id,
                            "detail": entry.detail,
                        },
                    )
            case EnqueueDispatch():
                self._row(
                    "outbox",
                    {
                        "id": c.id,
                        "job_id": c.job_id,
                        "instance_id": c.instance_id,
                        "job_type": c.job_type,
                        # bytes travel in the JSON document as base64
                        "payload": base64.b64encode(c.payload).decode("ascii"),
                    },
                )
            case ChainNext():
                # made after commit (or by the chain sweeper after a crash), exactly once
                self._row(
                    "chains",
                    {
                        "parent_instance_id": c.parent_instance_id,
                        "definition_id": c.definition_id,
                        "variables": c.variables,
                        "business_key": c.business_key,
                    },
                )
            case _:
                assert_never(c)

    def _cancel_new_work(self, c: CancelOpenWork) -> None:
        scope = None if c.execution_ids is None else set(c.execution_ids)

        def targeted(row: dict[str, Any]) -> bool:
            return row["instance_id"] == c.instance_id and (
                scope is None or row["step_execution_id"] in scope
            )

        for row in self.new["timers"].values():
            if targeted(row) and row["status"] == "PENDING":
                row["status"] = "CANCELLED"
        if c.timers_only:
            return
        for row in self.new["jobs"].values():
            if targeted(row) and row["status"] in ("UNLOCKED", "LOCKED"):
                row.update(status="CANCELLED", ended_at=c.at)
        for row in self.new["tasks"].values():
            if targeted(row) and row["status"] == "OPEN":
                row["status"] = "CANCELLED"


def _instance_row(i: Instance) -> dict[str, Any]:
    return {
        "id": i.id,
        "definition_id": i.definition_id,
        "definition_version": i.definition_version,
        "status": i.status.value,
        "current_step_ids": list(i.current_step_ids),
        "variables": i.variables,
        "join_arrivals": i.join_arrivals,
        "step_attempts": i.step_attempts,
        "started_at": i.started_at,
        "completed_at": i.completed_at,
        "failure_reason": i.failure_reason,
        "business_key": i.business_key,
    }


class _JobListener:
    """One ``LISTEN`` connection per store, (re)opened in the background, and its waiters.

    While the connection is down, waiters simply run into their timeouts. Every (re)connect
    wakes all waiters, since notifications sent while nobody listened are lost.
    """

    def __init__(
        self, pool: Pool, *, health_interval: float, reconnect_delay: tuple[float, float]
    ) -> None:
        self._pool = pool
        self._health_interval = health_interval
        self._min_delay, self._max_delay = reconnect_delay
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name="rochallor-job-listener")

    async def wait_connected(self, seconds: float) -> bool:
        self.start()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._connected.wait()
        return self.connected

    async def wait(self, job_types: Sequence[str], seconds: float) -> None:
        event = asyncio.Event()
        types = set(job_types)
        for job_type in types:
            self._waiters.setdefault(job_type, set()).add(event)
        try:
            self.start()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(seconds, 0)):
                    await event.wait()
        finally:
            for job_type in types:
                waiting = self._waiters.get(job_type)
                if waiting is not None:
                    waiting.discard(event)
                    if not waiting:
                        del self._waiters[job_type]

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._wake_all()

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        for event in self._waiters.get(str(payload), ()):
            event.set()

    async def _run(self) -> None:
        delay = self._min_delay
        while not self._closed:
            try:
                await self._listen_once()
                delay = self._min_delay  # it was up: retry promptly
            except Exception as exc:  # any failure means: reconnect later
                log.warning("job listener: %s; reconnecting in %.1fs", exc, delay)
                delay_now, delay = delay, min(delay * 2, self._max_delay)
                await asyncio.sleep(delay_now)
            else:
                await asyncio.sleep(delay)

    async def _listen_once(self) -> None:
        """Listen on one pooled connection until it breaks (or the task is cancelled)."""
        conn = await self._pool.acquire()
        lost = asyncio.Event()

        def on_lost(_conn: object) -> None:
            lost.set()

        healthy = False
        try:
            conn.add_termination_listener(on_lost)
            await conn.add_listener(JOBS_CHANNEL, self._on_notification)
            healthy = True
            self._connected.set()
            log.info("job listener: listening on %s", JOBS_CHANNEL)
            self._wake_all()
            await self._watch(conn, lost)
            healthy = False
            log.warning("job listener: connection lost")
        finally:
            self._connected.clear()
            await self._release(conn, on_lost, healthy=healthy)

    async def _watch(self, conn: PoolConnectionProxy[Any], lost: asyncio.Event) -> None:
        """Return when the connection is gone or stops answering."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._health_interval):
                    await lost.wait()
                    return
            # A silently dropped TCP connection delivers nothing: probe it now and then.
            try:
                await conn.execute(_PING, timeout=min(self._health_interval, 10))
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
                return

    async def _release(
        self,
        conn: PoolConnectionProxy[Any],
        on_lost: Callable[[Any], None],
        *,
        healthy: bool,
    ) -> None:
        """Give a working connection back to the pool; close a broken one."""
        try:
            conn.remove_termination_listener(on_lost)
            if not healthy:
                conn.terminate()
                return
            await conn.remove_listener(JOBS_CHANNEL, self._on_notification)
            await self._pool.release(conn, timeout=10)
        except asyncpg.InterfaceError:
            # A connection that died has already left the pool (its proxy is detached).
            pass
        except (asyncpg.PostgresError, OSError, TimeoutError):
            with contextlib.suppress(asyncpg.InterfaceError):
                conn.terminate()


class PostgresStore:
    """The store over an asyncpg pool (see :func:`create_pool`); ``close()`` before the pool."""

    def __init__(
        self,
        pool: Pool,
        *,
        listener_health_interval: float = 30.0,
        listener_reconnect_delay: tuple[float, float] = (0.2, 5.0),
    ) -> None:
        self._pool = pool
        self._listener = _JobListener(
            pool,
            health_interval=listener_health_interval,
            reconnect_delay=listener_reconnect_delay,
        )

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresSession]:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                yield PostgresSession(conn)
        except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as exc:
            # Rolled back whole; the service runs the operation again.
            raise TransientStorageError(str(exc)) from exc
        except _CONNECTION_ERRORS as exc:
            if not _outage(exc):
                raise
            raise _unavailable(exc) from exc

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[PostgresSession]:
        try:
            async with self._pool.acquire() as conn:
                yield PostgresSession(conn)
        except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as exc:
            raise TransientStorageError(str(exc)) from exc
        except _CONNECTION_ERRORS as exc:
            if not _outage(exc):
                raise
            raise _unavailable(exc) from exc

    async def ping(self) -> None:
        """Raise :class:`StorageUnavailable` unless the database answers now."""
        try:
            async with asyncio.timeout(_PING_TIMEOUT):
                async with self._pool.acquire() as conn:
                    await conn.fetchval(_PING)
        except _PING_ERRORS as exc:
            if not _outage(exc):
                raise
            raise _unavailable(exc) from exc

    @contextlib.asynccontextmanager
    async def advisory_lock(self, key: int) -> AsyncIterator[bool]:
        async with self._pool.acquire() as conn:
            if await conn.fetchval(_TRY_ADVISORY_LOCK, key):
                try:
                    yield True
                finally:
                    await _unlock(conn, key)
                return
        # Not taken: give the connection back before the caller's (skipped) tick.
        yield False

    async def wait_for_jobs(self, job_types: Sequence[str], timeout: float) -> None:  # noqa: ASYNC109
        await self._listener.wait(job_types, timeout)

    async def listen(self, within: float = 10.0) -> bool:
        """Start the job listener now and wait until it listens; ``False`` on timeout.

        Optional: :meth:`wait_for_jobs` starts the listener on first use.
        """
        return await self._listener.wait_connected(within)

    async def close(self) -> None:
        await self._listener.close()

    # kafka_outbox mode (service.ports.OutboxStore)

    async def lead_outbox(self, key: int) -> outbox.PostgresOutboxLeadership | None:
        return await outbox.lead_outbox(self._pool, key)

    async def outbox_table_exists(self) -> bool:
        return await outbox.outbox_table_exists(self._pool)

    async def service_task_job_types(self) -> list[str]:
        return await outbox.service_task_job_types(self._pool)


async def _unlock(conn: PoolConnectionProxy[Any], key: int) -> None:
    try:
        await conn.fetchval(_ADVISORY_UNLOCK, key)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        # The session is gone, and its locks with it; the pool's reset unlocks all otherwise.
        log.warning("advisory unlock of %d failed: %s", key, exc)


if TYPE_CHECKING:
    # mypy proves here that the classes satisfy the service ports.
    def _conforms(
        store: PostgresStore, tx: PostgresSession
    ) -> tuple[ports.Store, ports.Session, ports.OutboxStore]:
        return store, tx, store


__all__ = [
    "JOBS_CHANNEL",
    "PostgresSession",
    "PostgresStore",
    "apply_statement",
    "command_document",
    "create_pool",
    "like_pattern",
]
