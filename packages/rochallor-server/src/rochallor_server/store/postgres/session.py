"""The store's statements: :class:`PostgresSession` runs each port method as one named
statement (``queries.sql``, or the apply statement of :mod:`.apply`) and maps the rows back to
engine models (:mod:`.rows`).

Whether each statement commits on its own or all in one transaction is decided by the caller
(``PostgresStore.session()`` / ``transaction()``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from rochallor_server.engine.commands import Command
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
from rochallor_server.service import ports
from rochallor_server.store.postgres import apply, rows
from rochallor_server.store.postgres.statements import STATEMENTS

# Looked up at import so that a statement missing from queries.sql fails at once.
_LOCK_DEFINITION_ID = STATEMENTS["lock_definition_id"]
_INSERT_DEFINITION = STATEMENTS["insert_definition"]
_LATEST_DEFINITION = STATEMENTS["latest_definition"]
_LATEST_DEFINITION_VERSIONS = STATEMENTS["latest_definition_versions"]
_DEFINITION = STATEMENTS["definition"]
_LIST_DEFINITIONS = STATEMENTS["list_definitions"]
_COUNT_DEFINITIONS = STATEMENTS["count_definitions"]
_GET_INSTANCE = STATEMENTS["get_instance"]
_LOAD_INSTANCE = STATEMENTS["load_instance"]
_LIST_INSTANCES = STATEMENTS["list_instances"]
_COUNT_INSTANCES = STATEMENTS["count_instances"]
_COUNT_INSTANCES_BY_STATUS = STATEMENTS["count_instances_by_status"]
_HISTORY = STATEMENTS["history"]
_DEFINITION_VERSIONS = STATEMENTS["definition_versions"]
_INSTANCE_AUDIT = STATEMENTS["instance_audit"]
_CHAIN_LINKS = STATEMENTS["chain_links"]
_JOB_QUEUES = STATEMENTS["job_queues"]
_EXHAUSTED_JOBS = STATEMENTS["exhausted_jobs"]
_COUNT_EXHAUSTED_JOBS = STATEMENTS["count_exhausted_jobs"]
_RECORD_WORKERS = STATEMENTS["record_workers"]
_GET_JOB = STATEMENTS["get_job"]
_LOAD_JOB_EVENTS = STATEMENTS["load_job_events"]
_CLAIM_JOBS = STATEMENTS["claim_jobs"]
_EXTEND_LEASE = STATEMENTS["extend_lease"]
_RELEASE_JOBS = STATEMENTS["release_jobs"]
_RECLAIM_EXPIRED_LEASES = STATEMENTS["reclaim_expired_leases"]
_NOTIFY_JOB_TYPES = STATEMENTS["notify_job_types"]
_OPEN_USER_TASK = STATEMENTS["open_user_task"]
_GET_TIMER = STATEMENTS["get_timer"]
_DUE_TIMERS = STATEMENTS["due_timers"]
_NEXT_PENDING_CHAIN = STATEMENTS["next_pending_chain"]
_DELETE_PENDING_CHAIN = STATEMENTS["delete_pending_chain"]

# asyncpg's classes are generic only in their stubs, hence the quoted alias.
Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"


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


class PostgresSession:
    """The store's reads and writes on one connection (in one transaction or not: see
    ``PostgresStore.session()`` and ``transaction()``)."""

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
        document, guards = apply.command_document(events, audit=audit)
        if document is None:
            return [True] * len(events)
        row = await self._conn.fetchrow(apply.apply_statement(frozenset(document)), document)
        assert row is not None  # a SELECT without FROM yields one row
        saved, retried = set(row["saved"]), set(row["retried"])
        return [
            (guard.instance is None or guard.instance in saved)
            and retried.issuperset(guard.retried_jobs)
            for guard in guards
        ]
