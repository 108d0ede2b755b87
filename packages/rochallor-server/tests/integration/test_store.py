"""PostgresStore against a real PostgreSQL: every command, every read, claiming and wake-ups."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import attrs
import pytest

from rochallor_server.engine.commands import (
    Audit,
    CancelOpenWork,
    ChainNext,
    Command,
    CompleteJob,
    CompleteUserTask,
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
    ExecutionStatus,
    Instance,
    InstanceStatus,
    Job,
    JobStatus,
    StepExecution,
    Timer,
    TimerStatus,
    UserTask,
    UserTaskStatus,
)
from rochallor_server.service.ports import InstanceFilter
from rochallor_server.store.postgres import PostgresStore, apply_statement, create_pool
from rochallor_server.store.postgres import apply as apply_module
from rochallor_server.store.postgres.statements import STATEMENTS

from .records import (
    LEASE,
    T0,
    at,
    make_execution,
    make_instance,
    make_job,
    make_timer,
    new_id,
)


@pytest.fixture
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool[asyncpg.Record]]:
    pool = await create_pool(pg_dsn, 1, 12)
    yield pool
    await pool.close()


@pytest.fixture
async def store(pool: asyncpg.Pool[asyncpg.Record]) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(pool, listener_reconnect_delay=(0.05, 0.2))
    yield store
    await store.close()


async def apply(store: PostgresStore, *commands: Command, audit: bool = True) -> None:
    async with store.transaction() as tx:
        await tx.apply_events([commands], audit=audit)


async def seed(
    store: PostgresStore, *, jobs: int = 0, job_type: str = "charge"
) -> tuple[Instance, StepExecution, list[Job]]:
    """An instance with one running execution and ``jobs`` jobs created one second apart."""
    instance = make_instance()
    execution = make_execution(instance)
    created = [make_job(execution, job_type, created_at=at(n)) for n in range(jobs)]
    await apply(
        store,
        InsertInstance(instance=instance),
        InsertExecution(execution=execution, input_snapshot={}),
        *(InsertJob(job=j) for j in created),
    )
    return instance, execution, created


async def fetch_row(store: PostgresStore, sql: str, *args: Any) -> asyncpg.Record | None:
    async with store.transaction() as tx:
        row: asyncpg.Record | None = await tx._conn.fetchrow(sql, *args)
        return row


# -- instances ---------------------------------------------------------------------------


async def test_instance_round_trip(store: PostgresStore) -> None:
    variables = {
        "big": 2**70,
        "negative_big": -(2**80),
        "text": "naïve ☃ \u0001",
        "ratio": 0.1,
        "nested": {"z": [1, 2.5, None, True], "a": {}},
    }
    instance = make_instance(
        current_step_ids=("a", "b"),
        variables=variables,
        join_arrivals={"join": 1},
        step_attempts={"a": 1, "b": 2},
        business_key="bk-1",
    )
    await apply(store, InsertInstance(instance=instance))
    async with store.transaction() as tx:
        assert await tx.get_instance(instance.id) == instance
        assert await tx.load_instance(instance.id) == InstanceState(instance=instance)
        assert await tx.get_instance("missing") is None
        assert await tx.load_instance("missing") is None

    saved = make_instance(
        id=instance.id,
        status=InstanceStatus.FAILED,
        current_step_ids=(),
        variables={"x": 1},
        join_arrivals={},
        step_attempts={"a": 3},
        completed_at=at(5),
        failure_reason="boom",
        business_key="bk-1",
    )
    await apply(store, SaveInstance(instance=saved))
    async with store.transaction() as tx:
        loaded = await tx.get_instance(instance.id)
    assert loaded == attrs.evolve(saved, revision=1)  # every save bumps the revision
    assert loaded is not None and isinstance(loaded.current_step_ids, tuple)
    assert loaded.status is InstanceStatus.FAILED


async def test_list_instances_filters_order_and_total(store: PostgresStore) -> None:
    rows = [
        make_instance(definition_id="a", status=InstanceStatus.ACTIVE, started_at=at(1)),
        make_instance(definition_id="a", status=InstanceStatus.COMPLETED, started_at=at(3)),
        make_instance(definition_id="b", status=InstanceStatus.ACTIVE, started_at=at(2)),
        make_instance(definition_id="a", status=InstanceStatus.ACTIVE, started_at=at(3)),
        make_instance(definition_id="b", status=InstanceStatus.ACTIVE, business_key="k"),
    ]
    await apply(store, *(InsertInstance(instance=i) for i in rows))
    async with store.transaction() as tx:
        page = await tx.list_instances(filter=InstanceFilter(), offset=0, limit=10)
        assert page.total == 5
        # newest first; equal started_at broken by id, descending
        assert [i.id for i in page.items] == [
            rows[3].id,
            rows[1].id,
            rows[2].id,
            rows[0].id,
            rows[4].id,
        ]
        page = await tx.list_instances(
            filter=InstanceFilter(definition_id="a", status="ACTIVE"), offset=0, limit=10
        )
        assert (page.total, [i.id for i in page.items]) == (2, [rows[3].id, rows[0].id])
        page = await tx.list_instances(filter=InstanceFilter(definition_id="a"), offset=1, limit=1)
        assert (page.total, [i.id for i in page.items]) == (3, [rows[1].id])
        page = await tx.list_instances(filter=InstanceFilter(business_key="k"), offset=0, limit=5)
        assert page.items == [rows[4]]
        page = await tx.list_instances(filter=InstanceFilter(status="FAILED"), offset=0, limit=5)
        assert (page.total, page.items) == (0, [])
        page = await tx.list_instances(filter=InstanceFilter(), offset=10, limit=5)
        assert (page.total, page.items) == (5, [])


# -- executions --------------------------------------------------------------------------


async def test_executions_history_and_running(store: PostgresStore) -> None:
    instance = make_instance()
    first = make_execution(instance, "a", started_at=at(1))
    second = make_execution(instance, "b", started_at=at(2), attempt_number=2)
    twin = make_execution(instance, "c", started_at=at(2))  # same time: ordered by id
    await apply(
        store,
        InsertInstance(instance=instance),
        InsertExecution(execution=second, input_snapshot={"in": 2}),
        InsertExecution(execution=twin, input_snapshot={"in": 3}),
        InsertExecution(execution=first, input_snapshot={"in": 1}),
        FinishExecution(
            execution_id=first.id,
            status=ExecutionStatus.FAILED,
            ended_at=at(4),
            failure_reason="bad",
            output_snapshot={"out": [1]},
        ),
    )
    finished = StepExecution(
        id=first.id,
        instance_id=instance.id,
        step_id="a",
        step_type="SERVICE_TASK",
        attempt_number=1,
        status=ExecutionStatus.FAILED,
        started_at=at(1),
        ended_at=at(4),
        failure_reason="bad",
    )
    async with store.transaction() as tx:
        assert await tx.history(instance.id) == [finished, second, twin]
        assert await tx.load_instance(instance.id) == InstanceState(
            instance=instance, running=(second, twin)
        )
        assert await tx.history("missing") == []
    row = await fetch_row(
        store, "SELECT input_snapshot, output_snapshot FROM step_execution WHERE id = $1", first.id
    )
    assert row is not None
    assert (row["input_snapshot"], row["output_snapshot"]) == ({"in": 1}, {"out": [1]})


# -- jobs --------------------------------------------------------------------------------


async def test_job_lifecycle_commands(store: PostgresStore) -> None:
    _, execution, (job,) = await seed(store, jobs=1)
    async with store.transaction() as tx:
        assert await tx.get_job(job.id) == job
        assert await tx.get_job("missing") is None
        (claimed,) = await tx.claim_jobs(
            worker_id="w1", job_types=["charge"], limit=5, now=at(10), lease_expires_at=at(40)
        )
    assert claimed == Job(
        **{
            **_fields(job),
            "status": JobStatus.LOCKED,
            "worker_id": "w1",
            "locked_at": at(10),
            "lock_expires_at": at(40),
        }
    )

    await apply(store, RetryJob(job=claimed, retries_remaining=1))
    async with store.transaction() as tx:
        retried = await tx.get_job(job.id)
    assert retried == Job(**{**_fields(job), "retries_remaining": 1})  # created_at kept

    await apply(store, CompleteJob(job_id=job.id, worker_id="w2", at=at(50)))
    row = await fetch_row(
        store, "SELECT status, worker_id, ended_at FROM job WHERE id = $1", job.id
    )
    assert row is not None and tuple(row) == ("COMPLETED", "w2", at(50))

    other = make_job(execution, worker_id="w3", status=JobStatus.LOCKED)
    await apply(
        store,
        InsertJob(job=other),
        FailJob(job_id=other.id, worker_id=None, at=at(60)),  # no worker: keep the recorded one
    )
    row = await fetch_row(
        store, "SELECT status, worker_id, ended_at FROM job WHERE id = $1", other.id
    )
    assert row is not None and tuple(row) == ("FAILED", "w3", at(60))


def _fields(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "instance_id": job.instance_id,
        "step_execution_id": job.step_execution_id,
        "step_id": job.step_id,
        "job_type": job.job_type,
        "status": job.status,
        "retries_remaining": job.retries_remaining,
        "payload": job.payload,
        "created_at": job.created_at,
        "worker_id": job.worker_id,
        "locked_at": job.locked_at,
        "lock_expires_at": job.lock_expires_at,
    }


async def test_claim_takes_oldest_first_and_honours_limit_and_types(store: PostgresStore) -> None:
    instance = make_instance()
    execution = make_execution(instance)
    # inserted out of age order; two share a created_at (tie broken by id)
    jobs = [
        make_job(execution, "a", id="J-c", created_at=at(3)),
        make_job(execution, "b", id="J-a", created_at=at(1)),
        make_job(execution, "other", id="J-x", created_at=at(0)),
        make_job(execution, "a", id="J-b", created_at=at(2)),
        make_job(execution, "a", id="J-d", created_at=at(2)),
    ]
    await apply(
        store,
        InsertInstance(instance=instance),
        InsertExecution(execution=execution, input_snapshot={}),
        *(InsertJob(job=j) for j in jobs),
    )

    async def claim(types: Sequence[str], limit: int) -> list[str]:
        async with store.transaction() as tx:
            got = await tx.claim_jobs(
                worker_id="w", job_types=types, limit=limit, now=at(9), lease_expires_at=at(39)
            )
        return [j.id for j in got]

    assert await claim(["a", "b"], 0) == []
    assert await claim([], 5) == []
    assert await claim(["a", "b"], 3) == ["J-a", "J-b", "J-d"]
    assert await claim(["a", "b"], 3) == ["J-c"]
    assert await claim(["a", "b"], 3) == []
    assert await claim(["other"], 3) == ["J-x"]


async def test_concurrent_claimers_never_share_a_job(store: PostgresStore) -> None:
    instance = make_instance()
    execution = make_execution(instance)
    # 200 claimable jobs of three types, many sharing a created_at, and 20 of a fourth type
    jobs = [make_job(execution, "abc"[n % 3], created_at=at(n % 17)) for n in range(200)]
    jobs += [make_job(execution, "d", created_at=at(0)) for _ in range(20)]
    await apply(
        store,
        InsertInstance(instance=instance),
        InsertExecution(execution=execution, input_snapshot={}),
        *(InsertJob(job=j) for j in jobs),
    )
    wanted = {j.id for j in jobs if j.job_type in {"a", "b", "c"}}
    limit = 4

    async def claimer(worker: str) -> list[list[Job]]:
        batches: list[list[Job]] = []
        while True:
            async with store.transaction() as tx:
                batch = await tx.claim_jobs(
                    worker_id=worker,
                    job_types=["a", "b", "c"],
                    limit=limit,
                    now=at(30),
                    lease_expires_at=at(60),
                )
            if not batch:
                return batches
            batches.append(batch)

    results = await asyncio.gather(*(claimer(f"w{n}") for n in range(8)))
    batches = [batch for worker_batches in results for batch in worker_batches]
    claimed = [job.id for batch in batches for job in batch]
    assert len(claimed) == len(set(claimed)), "a job was claimed twice"
    assert set(claimed) == wanted
    assert all(0 < len(batch) <= limit for batch in batches)
    assert all(j.job_type != "d" for batch in batches for j in batch)
    for worker, worker_batches in zip(range(8), results, strict=True):
        for batch in worker_batches:
            assert [j.worker_id for j in batch] == [f"w{worker}"] * len(batch)
            assert batch == sorted(batch, key=lambda j: (j.created_at, j.id))
    row = await fetch_row(store, "SELECT count(*) FROM job WHERE status = 'LOCKED'")
    assert row is not None and row[0] == len(wanted)


async def test_extend_lease_only_by_the_holder(store: PostgresStore) -> None:
    _, _, (job, idle) = await seed(store, jobs=2)
    async with store.transaction() as tx:
        await tx.claim_jobs(
            worker_id="w1", job_types=["charge"], limit=1, now=at(10), lease_expires_at=at(40)
        )
        assert await tx.extend_lease(job_id=job.id, worker_id="w2", lease_expires_at=at(70)) is None
        assert (
            await tx.extend_lease(job_id=idle.id, worker_id="w1", lease_expires_at=at(70)) is None
        )
        assert (
            await tx.extend_lease(job_id="missing", worker_id="w1", lease_expires_at=at(70)) is None
        )
        assert await tx.extend_lease(job_id=job.id, worker_id="w1", lease_expires_at=at(70)) == at(
            70
        )
        locked = await tx.get_job(job.id)
    assert locked is not None and locked.lock_expires_at == at(70)


async def test_reclaim_expired_leases(store: PostgresStore) -> None:
    _, _, jobs = await seed(store, jobs=3)
    async with store.transaction() as tx:
        await tx.claim_jobs(
            worker_id="w1", job_types=["charge"], limit=2, now=at(10), lease_expires_at=at(40)
        )
        await tx.claim_jobs(
            worker_id="w2", job_types=["charge"], limit=1, now=at(20), lease_expires_at=at(50)
        )
    async with store.transaction() as tx:
        assert await tx.reclaim_expired_leases(now=at(40), limit=10) == []  # strictly before
        reclaimed = await tx.reclaim_expired_leases(now=at(45), limit=10)
    # returned as they were: the expired lease and its worker
    assert [(j.id, j.status, j.worker_id, j.lock_expires_at) for j in reclaimed] == [
        (jobs[0].id, JobStatus.LOCKED, "w1", at(40)),
        (jobs[1].id, JobStatus.LOCKED, "w1", at(40)),
    ]
    async with store.transaction() as tx:
        now_unlocked = await tx.get_job(jobs[0].id)
        still_locked = await tx.get_job(jobs[2].id)
        assert await tx.reclaim_expired_leases(now=at(100), limit=0) == []
        assert len(await tx.reclaim_expired_leases(now=at(100), limit=10)) == 1
    assert now_unlocked == jobs[0]  # UNLOCKED, lock fields cleared, retries untouched
    assert still_locked is not None and still_locked.worker_id == "w2"


async def test_claim_uses_the_partial_index_among_many_finished_jobs(
    store: PostgresStore,
) -> None:
    _, execution, _ = await seed(store, jobs=20)
    async with store.transaction() as tx:
        conn = tx._conn
        # 20k finished jobs of ten types, next to a live mix: in-flight jobs and other types
        await conn.execute(
            """
            INSERT INTO job (id, instance_id, step_execution_id, step_id, job_type, status,
                             created_at)
            SELECT 'j-' || n, $1, $2, 'task',
                   'type-' || n % 10,
                   CASE WHEN n <= 20000 THEN 'COMPLETED'
                        WHEN n % 3 = 0 THEN 'UNLOCKED' ELSE 'LOCKED' END,
                   $3::timestamptz - n * interval '1 second'
            FROM generate_series(1, 20300) AS n
            """,
            execution.instance_id,
            execution.id,
            T0,
        )
    async with store.transaction() as tx:
        conn = tx._conn
        await conn.execute("ANALYZE job")
        claim_plan = await conn.fetchval(
            "EXPLAIN (FORMAT JSON)\n" + STATEMENTS["claim_jobs"],
            "w",
            T0,
            T0 + LEASE,
            ["charge"],
            10,
        )
        reclaim_plan = await conn.fetchval(
            "EXPLAIN (FORMAT JSON)\n" + STATEMENTS["reclaim_expired_leases"], T0, 10
        )
    # Only indexes over open jobs are read: the 20k finished rows are never visited.
    assert _index_names(claim_plan) & {"ix_job_claimable", "ix_job_instance_open"}
    assert "Seq Scan" not in _node_types(claim_plan)
    assert "ix_job_lease" in _index_names(reclaim_plan)


async def test_claim_reads_a_deep_queue_in_index_order(store: PostgresStore) -> None:
    _, execution, _ = await seed(store, jobs=1)
    async with store.transaction() as tx:
        conn = tx._conn
        await conn.execute(
            """
            INSERT INTO job (id, instance_id, step_execution_id, step_id, job_type, status,
                             created_at)
            SELECT 'q-' || n, $1, $2, 'task', 'type-' || n % 4, 'UNLOCKED',
                   $3::timestamptz + n * interval '1 millisecond'
            FROM generate_series(1, 40000) AS n
            """,
            execution.instance_id,
            execution.id,
            T0,
        )
        await conn.execute("ANALYZE job")
        plan = await conn.fetchval(
            "EXPLAIN (FORMAT JSON)\n" + STATEMENTS["claim_jobs"],
            "w",
            T0,
            T0 + LEASE,
            ["type-1", "type-2"],
            10,
        )
    # Each requested type is read oldest-first straight from the index and stops after
    # ``limit`` rows: no sort of the whole queue, whatever its depth.
    assert "ix_job_claimable" in _index_names(plan)
    assert "Seq Scan" not in _node_types(plan)


def _node_types(plan: Any) -> set[str]:
    text = plan if isinstance(plan, str) else json.dumps(plan)
    return {m for m in ("Seq Scan", "Sort") if f'"Node Type": "{m}"' in text}


def _index_names(plan: Any) -> set[str]:
    if isinstance(plan, str):
        plan = json.loads(plan)
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "Index Name" in node:
                found.add(node["Index Name"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(plan)
    return found


# -- user tasks and timers ---------------------------------------------------------------


async def test_user_task_round_trip(store: PostgresStore) -> None:
    instance, execution, _ = await seed(store)
    task = UserTask(
        id=new_id("U"),
        instance_id=instance.id,
        step_execution_id=execution.id,
        step_id="task",
        status=UserTaskStatus.OPEN,
        payload={"approve": None},
        created_at=at(1),
    )
    await apply(store, InsertUserTask(task=task))
    async with store.transaction() as tx:
        assert await tx.open_user_task(instance.id, "task") == task
        assert await tx.open_user_task(instance.id, "other") is None
    await apply(
        store,
        CompleteUserTask(task_id=task.id, result={"approved": True}, completed_by="ann", at=at(9)),
    )
    async with store.transaction() as tx:
        assert await tx.open_user_task(instance.id, "task") is None
    row = await fetch_row(
        store,
        "SELECT status, result, completed_by, completed_at FROM user_task WHERE id = $1",
        task.id,
    )
    assert row is not None and tuple(row) == ("COMPLETED", {"approved": True}, "ann", at(9))


async def test_timers_round_trip_and_due_order(store: PostgresStore) -> None:
    _, execution, _ = await seed(store)

    def timer(fire_at: dt.datetime, timer_id: str) -> Timer:
        return make_timer(
            execution,
            id=timer_id,
            target_step_id="escalate",
            fire_at=fire_at,
            interrupting=timer_id.endswith("i"),
        )

    late, early_b, early_a = timer(at(30), "T-late"), timer(at(10), "T-b-i"), timer(at(10), "T-a")
    await apply(
        store, InsertTimer(timer=late), InsertTimer(timer=early_b), InsertTimer(timer=early_a)
    )
    async with store.transaction() as tx:
        assert await tx.get_timer(early_b.id) == early_b
        assert await tx.get_timer("missing") is None
        assert await tx.due_timers(now=at(9), limit=10) == []
        assert await tx.due_timers(now=at(10), limit=10) == [early_a, early_b]
        assert await tx.due_timers(now=at(99), limit=2) == [early_a, early_b]
        assert await tx.due_timers(now=at(99), limit=0) == []
    await apply(store, MarkTimerFired(timer_id=early_a.id))
    async with store.transaction() as tx:
        fired = await tx.get_timer(early_a.id)
        assert fired is not None and fired.status is TimerStatus.FIRED
        assert await tx.due_timers(now=at(99), limit=10) == [early_b, late]


# -- cancellation ------------------------------------------------------------------------


OPEN_WORK = {
    "job": "SELECT step_execution_id, status FROM job WHERE instance_id = $1 ORDER BY 1, 2",
    "user_task": (
        "SELECT step_execution_id, status FROM user_task WHERE instance_id = $1 ORDER BY 1, 2"
    ),
    "boundary_event_schedule": (
        "SELECT step_execution_id, status FROM boundary_event_schedule"
        " WHERE instance_id = $1 ORDER BY 1, 2"
    ),
}


async def _open_work(store: PostgresStore, instance_id: str) -> dict[str, list[tuple[str, str]]]:
    """``(execution id, status)`` of the jobs, user tasks and timers of an instance."""
    async with store.transaction() as tx:
        return {
            table: [(r[0], r[1]) for r in await tx._conn.fetch(sql, instance_id)]
            for table, sql in OPEN_WORK.items()
        }


async def _instance_with_work(store: PostgresStore) -> tuple[Instance, list[StepExecution]]:
    instance = make_instance()
    executions = [make_execution(instance, f"s{n}", id=f"E-{instance.id}-{n}") for n in range(2)]
    commands: list[Command] = [InsertInstance(instance=instance)]
    for execution in executions:
        commands += [
            InsertExecution(execution=execution, input_snapshot={}),
            InsertJob(job=make_job(execution)),
            InsertJob(job=make_job(execution, status=JobStatus.COMPLETED)),
            InsertUserTask(
                task=UserTask(
                    id=new_id("U"),
                    instance_id=instance.id,
                    step_execution_id=execution.id,
                    step_id=execution.step_id,
                    status=UserTaskStatus.OPEN,
                    created_at=T0,
                )
            ),
            InsertTimer(timer=make_timer(execution)),
        ]
    await apply(store, *commands)
    return instance, executions


async def test_cancel_open_work_of_the_whole_instance(store: PostgresStore) -> None:
    instance, (e0, e1) = await _instance_with_work(store)
    bystander, _ = await _instance_with_work(store)
    await apply(store, CancelOpenWork(instance_id=instance.id, at=at(5)))
    assert await _open_work(store, instance.id) == {
        "job": [
            (e0.id, "CANCELLED"),
            (e0.id, "COMPLETED"),
            (e1.id, "CANCELLED"),
            (e1.id, "COMPLETED"),
        ],
        "user_task": [(e0.id, "CANCELLED"), (e1.id, "CANCELLED")],
        "boundary_event_schedule": [(e0.id, "CANCELLED"), (e1.id, "CANCELLED")],
    }
    untouched = await _open_work(store, bystander.id)
    assert {status for rows in untouched.values() for _, status in rows} == {
        "UNLOCKED",
        "COMPLETED",
        "OPEN",
        "PENDING",
    }
    row = await fetch_row(
        store,
        "SELECT ended_at FROM job WHERE instance_id = $1 AND status = 'CANCELLED'",
        instance.id,
    )
    assert row is not None and row["ended_at"] == at(5)


async def test_cancel_open_work_scoped_and_timers_only(store: PostgresStore) -> None:
    instance, (e0, e1) = await _instance_with_work(store)
    await apply(store, CancelOpenWork(instance_id=instance.id, at=at(5), execution_ids=(e0.id,)))
    assert await _open_work(store, instance.id) == {
        "job": [
            (e0.id, "CANCELLED"),
            (e0.id, "COMPLETED"),
            (e1.id, "COMPLETED"),
            (e1.id, "UNLOCKED"),
        ],
        "user_task": [(e0.id, "CANCELLED"), (e1.id, "OPEN")],
        "boundary_event_schedule": [(e0.id, "CANCELLED"), (e1.id, "PENDING")],
    }
    await apply(
        store,
        CancelOpenWork(instance_id=instance.id, at=at(6), execution_ids=(e1.id,), timers_only=True),
    )
    assert await _open_work(store, instance.id) == {
        "job": [
            (e0.id, "CANCELLED"),
            (e0.id, "COMPLETED"),
            (e1.id, "COMPLETED"),
            (e1.id, "UNLOCKED"),
        ],
        "user_task": [(e0.id, "CANCELLED"), (e1.id, "OPEN")],
        "boundary_event_schedule": [(e0.id, "CANCELLED"), (e1.id, "CANCELLED")],
    }
    await apply(store, CancelOpenWork(instance_id=instance.id, at=at(7), execution_ids=()))
    assert (await _open_work(store, instance.id))["job"][-1] == (e1.id, "UNLOCKED")


# -- audit, chaining and atomicity -------------------------------------------------------


async def test_audit_written_only_when_enabled(store: PostgresStore) -> None:
    instance, _, _ = await seed(store)
    entry = AuditEntry(
        kind="instance-started", actor="api", instance_id=instance.id, detail={"v": 1}
    )
    chain = ChainNext(
        parent_instance_id=instance.id, definition_id="next", variables={}, business_key=None
    )
    await apply(store, Audit(entry=entry), chain, audit=False)
    row = await fetch_row(store, "SELECT count(*) FROM audit_log")
    assert row is not None and row[0] == 0

    other = AuditEntry(kind="job-retried", actor="w1", instance_id=None, detail={"n": 2**65})
    await apply(store, Audit(entry=entry), chain, Audit(entry=other), audit=True)
    async with store.transaction() as tx:
        rows = await tx._conn.fetch(
            "SELECT actor, kind, instance_id, detail FROM audit_log ORDER BY id"
        )
    assert [tuple(r) for r in rows] == [
        ("api", "instance-started", instance.id, {"v": 1}),
        ("w1", "job-retried", None, {"n": 2**65}),
    ]


async def test_a_failing_apply_leaves_nothing_behind(store: PostgresStore) -> None:
    instance = make_instance()
    orphan = make_execution(make_instance())  # its instance does not exist
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await apply(
            store,
            InsertInstance(instance=instance),
            InsertExecution(execution=orphan, input_snapshot={}),
        )
    async with store.transaction() as tx:
        assert await tx.get_instance(instance.id) is None


# -- definitions -------------------------------------------------------------------------


def document(definition_id: str, name: str, **extra: Any) -> dict[str, Any]:
    # keys deliberately not in sorted order
    return {
        "id": definition_id,
        "name": name,
        "steps": [
            {
                "type": "DECISION",
                "id": "route",
                "conditionalNextSteps": {"z > 1": "end", "a > 1": "end", "default": "end"},
            },
            {"type": "END", "id": "end"},
        ],
        **extra,
    }


async def _upload(store: PostgresStore, doc: dict[str, Any], at_: dt.datetime = T0) -> Any:
    async with store.transaction() as tx:
        return await tx.insert_definition(
            document=doc, definition_id=doc["id"], name=doc["name"], uploaded_at=at_
        )


async def test_definition_versions_keep_the_document_order(store: PostgresStore) -> None:
    first = document(
        "order", "Order", autoStartNextWorkflow=True, nextWorkflowId="ship", description="d"
    )
    record = await _upload(store, first)
    assert (record.id, record.version, record.name, record.uploaded_at) == ("order", 1, "Order", T0)
    assert record.document == first
    second = await _upload(store, document("order", "Order v2"), at(5))
    assert second.version == 2

    async with store.transaction() as tx:
        latest = await tx.latest_definition("order")
        one = await tx.definition("order", 1)
        assert await tx.definition("order", 3) is None
        assert await tx.latest_definition("missing") is None
    assert latest == second
    assert one == record
    assert one is not None
    assert list(one.document) == list(first)
    routes = one.document["steps"][0]["conditionalNextSteps"]
    assert list(routes) == ["z > 1", "a > 1", "default"]

    row = await fetch_row(
        store,
        "SELECT parsed_steps, auto_start_next_workflow_id, description"
        " FROM workflow_definition WHERE id = $1 ORDER BY version",
        "order",
    )
    assert row is not None
    assert row["parsed_steps"] == first["steps"]
    assert (row["auto_start_next_workflow_id"], row["description"]) == ("ship", "d")
    row = await fetch_row(
        store,
        "SELECT auto_start_next_workflow_id FROM workflow_definition WHERE id = $1 AND version = 2",
        "order",
    )
    assert row is not None and row[0] is None


async def test_concurrent_uploads_of_one_id_get_distinct_versions(store: PostgresStore) -> None:
    records = await asyncio.gather(
        *(_upload(store, document("race", f"Race {n}")) for n in range(8))
    )
    assert sorted(r.version for r in records) == list(range(1, 9))


async def test_lock_definition_makes_compare_then_insert_atomic(store: PostgresStore) -> None:
    doc = document("same", "Same")

    async def upload_unless_present() -> None:
        async with store.transaction() as tx:
            await tx.lock_definition("same")
            latest = await tx.latest_definition("same")
            await asyncio.sleep(0.02)  # widen the race window
            if latest is None or latest.document != doc:
                await tx.insert_definition(
                    document=doc, definition_id="same", name="Same", uploaded_at=T0
                )

    await asyncio.gather(*(upload_unless_present() for _ in range(5)))
    async with store.transaction() as tx:
        latest = await tx.latest_definition("same")
    assert latest is not None and latest.version == 1


async def test_list_definitions_latest_per_id_paging_and_keyword(store: PostgresStore) -> None:
    for definition_id, name in [
        ("b-flow", "Beta"),
        ("a-flow", "Alpha"),
        ("a-flow", "Alpha renamed"),
        ("c_flow", "100% Gamma"),
        ("cxflow", "Delta"),
        ("d-flow", "Epsilon"),
    ]:
        await _upload(store, document(definition_id, name))

    async def listing(
        keyword: str | None, offset: int = 0, limit: int = 10
    ) -> tuple[int, list[Any]]:
        async with store.transaction() as tx:
            page = await tx.list_definitions(keyword=keyword, offset=offset, limit=limit)
        return page.total, [(r.id, r.version) for r in page.items]

    assert await listing(None) == (
        5,
        [("a-flow", 2), ("b-flow", 1), ("c_flow", 1), ("cxflow", 1), ("d-flow", 1)],
    )
    assert await listing(None, offset=1, limit=2) == (5, [("b-flow", 1), ("c_flow", 1)])
    assert await listing(None, offset=9, limit=2) == (5, [])
    assert await listing("ALPHA REN") == (1, [("a-flow", 2)])  # name, case-insensitive
    assert await listing("FLOW", limit=1) == (5, [("a-flow", 2)])  # id
    assert await listing("c_f") == (1, [("c_flow", 1)])  # "_" is literal
    assert await listing("0%") == (1, [("c_flow", 1)])  # "%" is literal
    assert await listing("%") == (1, [("c_flow", 1)])
    assert await listing("\\") == (0, [])
    assert await listing("") == (
        5,
        [("a-flow", 2), ("b-flow", 1), ("c_flow", 1), ("cxflow", 1), ("d-flow", 1)],
    )


# -- advisory locks ----------------------------------------------------------------------


async def test_advisory_lock_excludes_a_second_holder(store: PostgresStore) -> None:
    key = 7815275248343610161
    async with store.advisory_lock(key) as first:
        assert first is True
        async with store.advisory_lock(key) as second:
            assert second is False
        async with store.advisory_lock(key + 1) as other_key:
            assert other_key is True
    async with store.advisory_lock(key) as again:
        assert again is True


# -- wake-ups ----------------------------------------------------------------------------


async def test_wait_for_jobs_wakes_on_an_inserted_job(store: PostgresStore) -> None:
    _, execution, _ = await seed(store)
    assert await store.listen()
    loop = asyncio.get_running_loop()

    waiter = asyncio.create_task(store.wait_for_jobs(["charge", "ship"], 10))
    await asyncio.sleep(0.05)
    started = loop.time()
    await apply(store, InsertJob(job=make_job(execution, "ship")))
    await asyncio.wait_for(waiter, 1)
    assert loop.time() - started < 1


async def test_wait_for_jobs_times_out_without_a_matching_job(store: PostgresStore) -> None:
    _, execution, _ = await seed(store)
    assert await store.listen()
    loop = asyncio.get_running_loop()
    started = loop.time()
    waiter = asyncio.create_task(store.wait_for_jobs(["charge"], 0.4))
    await asyncio.sleep(0.05)
    await apply(store, InsertJob(job=make_job(execution, "other-type")))
    await waiter
    assert loop.time() - started >= 0.4
    started = loop.time()
    await store.wait_for_jobs([], 0.1)
    assert loop.time() - started >= 0.1


async def test_retry_and_reclaim_wake_waiters(store: PostgresStore) -> None:
    _, _, (job,) = await seed(store, jobs=1)
    assert await store.listen()
    async with store.transaction() as tx:
        (claimed,) = await tx.claim_jobs(
            worker_id="w", job_types=["charge"], limit=1, now=at(1), lease_expires_at=at(2)
        )

    waiter = asyncio.create_task(store.wait_for_jobs(["charge"], 10))
    await asyncio.sleep(0.05)
    await apply(store, RetryJob(job=claimed, retries_remaining=1))
    await asyncio.wait_for(waiter, 1)

    async with store.transaction() as tx:
        await tx.claim_jobs(
            worker_id="w", job_types=["charge"], limit=1, now=at(1), lease_expires_at=at(2)
        )
    waiter = asyncio.create_task(store.wait_for_jobs(["charge"], 10))
    await asyncio.sleep(0.05)
    async with store.transaction() as tx:
        assert [j.id for j in await tx.reclaim_expired_leases(now=at(3), limit=5)] == [job.id]
    await asyncio.wait_for(waiter, 1)


async def test_notification_is_sent_at_commit_only(store: PostgresStore) -> None:
    _, execution, _ = await seed(store)
    assert await store.listen()
    waiter = asyncio.create_task(store.wait_for_jobs(["charge"], 10))
    await asyncio.sleep(0.05)
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.apply_events([[InsertJob(job=make_job(execution))]], audit=False)
            raise RuntimeError("roll back")
    await asyncio.sleep(0.3)
    assert not waiter.done()
    waiter.cancel()


async def test_listener_reconnects_after_losing_its_connection(
    store: PostgresStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rochallor_server.store.postgres")
    _, execution, _ = await seed(store)
    assert await store.listen()
    listener_pid = await _listener_pid(store)
    assert listener_pid is not None
    async with store.transaction() as tx:
        assert await tx._conn.fetchval("SELECT pg_terminate_backend($1)", listener_pid)

    async def new_listener() -> int:
        while True:
            pid = await _listener_pid(store)
            if pid is not None and pid != listener_pid and store._listener.connected:
                return pid
            await asyncio.sleep(0.05)

    await asyncio.wait_for(new_listener(), 5)
    waiter = asyncio.create_task(store.wait_for_jobs(["charge"], 10))
    await asyncio.sleep(0.05)
    await apply(store, InsertJob(job=make_job(execution)))
    await asyncio.wait_for(waiter, 1)
    messages = [r.getMessage() for r in caplog.records]
    assert "job listener: connection lost" in messages
    assert not [m for m in messages if "reconnecting in" in m]  # no error on the way


async def _listener_pid(store: PostgresStore) -> int | None:
    async with store.transaction() as tx:
        pid: int | None = await tx._conn.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
        )
        return pid


async def test_close_wakes_waiters(store: PostgresStore) -> None:
    waiter = asyncio.create_task(store.wait_for_jobs(["charge"], 10))
    await asyncio.sleep(0.05)
    await store.close()
    await asyncio.wait_for(waiter, 1)


async def test_an_execution_can_be_inserted_finished(store: PostgresStore) -> None:
    instance = make_instance()
    done = make_execution(
        instance,
        "route",
        step_type="DECISION",
        status=ExecutionStatus.COMPLETED,
        ended_at=at(0),
    )
    await apply(
        store,
        InsertInstance(instance=instance),
        InsertExecution(execution=done, input_snapshot={"in": 1}, output_snapshot={"out": 2}),
    )
    row = await fetch_row(
        store,
        "SELECT status, ended_at, input_snapshot, output_snapshot"
        " FROM step_execution WHERE id = $1",
        done.id,
    )
    assert row is not None
    assert dict(row) == {
        "status": "COMPLETED",
        "ended_at": at(0),
        "input_snapshot": {"in": 1},
        "output_snapshot": {"out": 2},
    }


async def test_every_apply_statement_shape_prepares(store: PostgresStore, pool: Any) -> None:
    """Each kind of row alone, with and without a save (the guard), and all kinds together;
    each statement is whole fragments of apply.sql, the guards always among them."""
    kinds = set(apply_module._KINDS)
    shapes = [{kind} for kind in kinds] + [{kind, "save"} for kind in kinds] + [kinds]
    fragments = set(apply_module._FRAGMENT_SQL.values())
    async with pool.acquire() as conn:
        for shape in shapes:
            sql = apply_statement(frozenset(shape))
            await conn.prepare(sql)
            assert sql.startswith("WITH saved AS (")
            assert "retried_jobs AS (" in sql
            # nothing but whole fragments, each once, and the separators between them
            rest = sql
            for fragment in sorted(fragments, key=len, reverse=True):
                assert rest.count(fragment) <= 1
                rest = rest.replace(fragment, "")
            assert re.fullmatch(r"WITH (,\n)*\nSELECT (,\n {7})*", rest), rest
    for nothing in (frozenset(), frozenset({"g"}), frozenset({"jobs", "g"})):
        with pytest.raises(ValueError, match="no apply statement"):
            apply_statement(nothing)


async def test_event_statements_plan_index_lookups_on_tables_planned_while_small(
    store: PostgresStore,
) -> None:
    """Generic plans are cached per connection, often while the tables are small, and kept
    after they have grown: the event path must plan index lookups whatever the statistics
    say (the pool disables sequential scans and hash and merge joins)."""
    _, _, (job,) = await seed(store, jobs=1)
    completion = {"job_ends", "save", "executions", "finishes", "audits"}
    statements = {
        "load": (STATEMENTS["load_job_events"], ([job.id],)),
        "apply": (apply_statement(frozenset(completion)), ({},)),
        "cancel": (apply_statement(frozenset({"cancels", "save"})), ({},)),
    }
    async with store.transaction() as tx:
        conn = tx._conn
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        for name, (sql, _args) in statements.items():
            await conn.execute(f"PREPARE {name} AS {sql}")
        # now the tables grow, unanalysed: the cached generic plans stay
        await conn.execute(
            """
            INSERT INTO workflow_instance (id, definition_id, definition_version, status)
            SELECT 'i-' || n, 'd', 1, 'COMPLETED' FROM generate_series(1, 20000) AS n;
            INSERT INTO step_execution (id, instance_id, step_id, step_type, status)
            SELECT 'e-' || n, 'i-' || n, 's', 'SERVICE_TASK', 'COMPLETED'
            FROM generate_series(1, 20000) AS n;
            INSERT INTO job (id, instance_id, step_execution_id, step_id, job_type, status)
            SELECT 'j-' || n, 'i-' || n, 'e-' || n, 's', 't', 'COMPLETED'
            FROM generate_series(1, 20000) AS n;
            """
        )
        for name, (_sql, args) in statements.items():
            literal = json.dumps(args[0]).replace("'", "''")
            argument = f"ARRAY['{job.id}']" if name == "load" else f"'{literal}'::jsonb"
            plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE {name}({argument})")
            text = json.dumps(plan) if not isinstance(plan, str) else plan
            assert "Seq Scan" not in _node_types(plan), name
            assert '"Node Type": "Hash Join"' not in text, name
            assert '"Node Type": "Merge Join"' not in text, name
        load_plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE load(ARRAY['{job.id}'])")
    assert "ix_step_execution_running" in _index_names(load_plan)
