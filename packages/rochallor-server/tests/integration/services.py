"""The service layer on PostgreSQL: building :class:`WorkflowService` over a fresh database,
reading what it stored with plain SQL, and the stored-state invariants every event keeps.

The service tests run on the real store: its optimistic concurrency (an event's write applies
only at the revision it read) is what they exercise, so there is no in-memory stand-in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from rochallor_server.config import EngineSettings
from rochallor_server.engine.model import Job
from rochallor_server.metrics import Metrics
from rochallor_server.service.workflow_service import DispatchEncoder, WorkflowService
from rochallor_server.store.postgres import PostgresStore
from rochallor_server.testing import FixedClock, SequentialIds


def make_service(
    store: PostgresStore,
    *,
    clock: FixedClock | None = None,
    dispatch: DispatchEncoder | None = None,
    ids_prefix: str = "id",
    **settings: Any,
) -> WorkflowService:
    """A service with a clock that moves only when told and ids in creation order.

    Replicas over one store need distinct ``ids_prefix`` (their ids must not collide).
    """
    return WorkflowService(
        store,
        settings=EngineSettings(**settings),
        metrics=Metrics(polling=dispatch is None),
        clock=clock or FixedClock(),
        ids=SequentialIds(ids_prefix),
        dispatch=dispatch,
    )


def value(metric: Any) -> float:
    """The current value of a prometheus counter (or of one of its label children)."""
    result: float = metric._value.get()
    return result


def samples(histogram: Any) -> float:
    """How many observations a prometheus histogram (label child) has recorded."""
    return float(sum(bucket.get() for bucket in histogram._buckets))


async def rows(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def scalar(dsn: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def jobs_of(store: PostgresStore, dsn: str, instance_id: str) -> list[Job]:
    """The jobs of an instance as stored, oldest first."""
    found = await rows(
        dsn, "SELECT id FROM job WHERE instance_id = $1 ORDER BY created_at, id", instance_id
    )
    jobs = []
    async with store.session() as tx:
        for row in found:
            job = await tx.get_job(row["id"])
            assert job is not None
            jobs.append(job)
    return jobs


async def audit_kinds(dsn: str, instance_id: str | None = None) -> list[str]:
    """The kinds of the audit entries written (of one instance), in order."""
    if instance_id is None:
        found = await rows(dsn, "SELECT kind FROM audit_log ORDER BY id")
    else:
        found = await rows(
            dsn, "SELECT kind FROM audit_log WHERE instance_id = $1 ORDER BY id", instance_id
        )
    return [r["kind"] for r in found]


async def database_rows(dsn: str) -> dict[str, list[str]]:
    """Every row of every table (but the migrations' own), as text, in a stable order: two
    snapshots are equal exactly when nothing was written in between."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'schema_migrations' ORDER BY tablename"
        )
        snapshot = {}
        for table in tables:
            name = table["tablename"]
            found = await conn.fetch(f'SELECT t::text AS row FROM "{name}" t ORDER BY 1')
            snapshot[name] = [r["row"] for r in found]
        return snapshot
    finally:
        await conn.close()


_OPEN_JOB = ("UNLOCKED", "LOCKED")
_TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


async def check_invariants(dsn: str, instance_ids: Sequence[str]) -> dict[str, str]:
    """Assert what every committed event keeps true of the stored instances; their statuses.

    - A terminal instance has an end time, one audit entry of its ending (more when it was
      retried: one per retry), and no open work: no open job, user task or pending timer, no
      running step execution. A live one has no end time and no ending not reopened.
    - Every job ended once: a finished job has an end time and an open one has none; no job
      is completed twice (one ``job-completed`` entry per completed job, none for others).
    - Open work belongs to running executions, and a running SERVICE_TASK execution of a
      live instance has exactly one open job (no orphaned or lost work).
    """
    conn = await asyncpg.connect(dsn)
    try:
        statuses = {}
        for instance_id in instance_ids:
            instance = await conn.fetchrow(
                "SELECT status, completed_at FROM workflow_instance WHERE id = $1", instance_id
            )
            assert instance is not None, instance_id
            status = instance["status"]
            statuses[instance_id] = status
            endings = await conn.fetchval(
                "SELECT count(*) FROM audit_log WHERE instance_id = $1"
                " AND kind IN ('instance-completed', 'instance-failed', 'instance-cancelled')",
                instance_id,
            )
            # a retry of a FAILED instance reopens its ending
            endings -= await conn.fetchval(
                "SELECT count(*) FROM audit_log WHERE instance_id = $1"
                " AND kind = 'instance-retried'",
                instance_id,
            )
            open_jobs = await conn.fetch(
                "SELECT j.id, e.status AS execution FROM job j"
                " JOIN step_execution e ON e.id = j.step_execution_id"
                " WHERE j.instance_id = $1 AND j.status = ANY($2::text[])",
                instance_id,
                list(_OPEN_JOB),
            )
            open_tasks = await conn.fetchval(
                "SELECT count(*) FROM user_task WHERE instance_id = $1 AND status = 'OPEN'",
                instance_id,
            )
            pending_timers = await conn.fetchval(
                "SELECT count(*) FROM boundary_event_schedule"
                " WHERE instance_id = $1 AND status = 'PENDING'",
                instance_id,
            )
            running = await conn.fetch(
                "SELECT e.id, e.step_type,"
                " (SELECT count(*) FROM job j WHERE j.step_execution_id = e.id"
                "  AND j.status = ANY($2::text[])) AS open_jobs"
                " FROM step_execution e WHERE e.instance_id = $1 AND e.status = 'RUNNING'",
                instance_id,
                list(_OPEN_JOB),
            )
            if status in _TERMINAL:
                assert instance["completed_at"] is not None, instance_id
                assert endings == 1, (instance_id, endings)
                assert (len(open_jobs), open_tasks, pending_timers, len(running)) == (
                    0,
                    0,
                    0,
                    0,
                ), f"open work left on {status} instance {instance_id}"
            else:
                assert instance["completed_at"] is None and endings == 0, instance_id
                assert all(j["execution"] == "RUNNING" for j in open_jobs), instance_id
                for execution in running:
                    if execution["step_type"] == "SERVICE_TASK":
                        assert execution["open_jobs"] == 1, (instance_id, execution["id"])
            jobs = await conn.fetch(
                "SELECT j.id, j.status, j.ended_at,"
                " (SELECT count(*) FROM audit_log a WHERE a.kind = 'job-completed'"
                "  AND a.detail ->> 'jobId' = j.id) AS completions"
                " FROM job j WHERE j.instance_id = $1",
                instance_id,
            )
            for job in jobs:
                ended = job["status"] in _TERMINAL
                assert (job["ended_at"] is not None) == ended, dict(job)
                assert job["completions"] == (job["status"] == "COMPLETED"), dict(job)
        return statuses
    finally:
        await conn.close()
