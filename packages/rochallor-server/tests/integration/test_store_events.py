"""The store's event statements and reads on PostgreSQL, observed only through the port
(:class:`~rochallor_server.service.ports.Session`): claiming and leases, job outcomes, wake-ups
at commit, the revision guard of optimistic concurrency, cancellation scoping, listings."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import attrs
import pytest

from rochallor_server.engine.commands import (
    CancelOpenWork,
    Command,
    CompleteJob,
    FailJob,
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
from rochallor_server.service.ports import InstanceFilter, LoadedJob, Store
from rochallor_server.store.postgres import PostgresStore

from .records import T0, at, make_execution, make_instance, make_job, make_timer, new_id


@pytest.fixture
def store(pg_store: PostgresStore) -> PostgresStore:
    return pg_store


async def apply(store: Store, *commands: Command) -> None:
    async with store.transaction() as tx:
        await tx.apply_events([commands], audit=True)


async def with_jobs(store: Store, *jobs: dict[str, Any]) -> list[Job]:
    """One instance with one running execution and a job per ``jobs`` entry (its changes)."""
    instance = make_instance()
    execution = make_execution(instance)
    made = [make_job(execution, **changes) for changes in jobs]
    await apply(
        store,
        InsertInstance(instance=instance),
        InsertExecution(execution=execution, input_snapshot={}),
        *(InsertJob(job=j) for j in made),
    )
    return made


async def claim(
    store: Store, types: Sequence[str], limit: int, worker: str = "w", now: float = 9
) -> list[str]:
    async with store.session() as tx:
        got = await tx.claim_jobs(
            worker_id=worker,
            job_types=types,
            limit=limit,
            now=at(now),
            lease_expires_at=at(now + 30),
        )
    assert all(
        (j.status, j.worker_id, j.locked_at) == (JobStatus.LOCKED, worker, at(now)) for j in got
    )
    return [j.id for j in got]


async def job_of(store: Store, job_id: str) -> Job:
    async with store.transaction() as tx:
        found = await tx.get_job(job_id)
    assert found is not None
    return found


# -- jobs -----------------------------------------------------------------------------------


async def test_claim_order_limit_and_types(store: Store) -> None:
    await with_jobs(
        store,
        {"job_type": "a", "id": "J-c", "created_at": at(3)},
        {"job_type": "b", "id": "J-a", "created_at": at(1)},
        {"job_type": "other", "id": "J-x", "created_at": at(0)},
        {"job_type": "a", "id": "J-b", "created_at": at(2)},
        {"job_type": "a", "id": "J-d", "created_at": at(2)},
        {"job_type": "a", "id": "J-0", "created_at": at(0), "status": JobStatus.COMPLETED},
    )
    assert await claim(store, ["a", "b"], 0) == []
    assert await claim(store, [], 5) == []
    assert await claim(store, ["a", "b"], 3) == ["J-a", "J-b", "J-d"]
    assert await claim(store, ["a", "b"], 3) == ["J-c"]
    assert await claim(store, ["a", "b"], 3) == []
    assert await claim(store, ["other"], 3) == ["J-x"]


async def test_leases_extend_and_reclaim(store: Store) -> None:
    first, second, idle = await with_jobs(
        store, {"created_at": at(0)}, {"created_at": at(1)}, {"created_at": at(2)}
    )
    assert await claim(store, ["charge"], 1, worker="w1", now=10) == [first.id]
    assert await claim(store, ["charge"], 1, worker="w2", now=20) == [second.id]
    async with store.transaction() as tx:
        for job_id, worker in [(first.id, "w2"), (idle.id, "w1"), ("missing", "w1")]:
            assert (
                await tx.extend_lease(job_id=job_id, worker_id=worker, lease_expires_at=at(99))
                is None
            )
        assert await tx.extend_lease(
            job_id=second.id, worker_id="w2", lease_expires_at=at(45)
        ) == at(45)
    async with store.transaction() as tx:
        assert await tx.reclaim_expired_leases(now=at(40), limit=10) == []  # strictly before
        reclaimed = await tx.reclaim_expired_leases(now=at(41), limit=10)
    assert [(j.id, j.status, j.worker_id, j.lock_expires_at) for j in reclaimed] == [
        (first.id, JobStatus.LOCKED, "w1", at(40))
    ]
    assert await job_of(store, first.id) == first  # unlocked again, retries untouched
    async with store.transaction() as tx:
        assert await tx.reclaim_expired_leases(now=at(100), limit=0) == []
        assert [j.id for j in await tx.reclaim_expired_leases(now=at(100), limit=5)] == [second.id]


async def test_job_outcomes_keep_or_record_the_worker(store: Store) -> None:
    retried, completed, failed = await with_jobs(store, {}, {}, {})
    assert len(await claim(store, ["charge"], 3, worker="w1")) == 3
    claimed = await job_of(store, retried.id)
    await apply(
        store,
        RetryJob(job=claimed, retries_remaining=1),
        CompleteJob(job_id=completed.id, worker_id=None, at=at(50)),
        FailJob(job_id=failed.id, worker_id="w9", at=at(50)),
        CompleteJob(job_id="missing", worker_id="w1", at=at(50)),  # updates nothing
    )
    # created_at kept, lock fields cleared
    assert await job_of(store, retried.id) == attrs.evolve(retried, retries_remaining=1)
    done, broken = await job_of(store, completed.id), await job_of(store, failed.id)
    assert (done.status, done.worker_id) == (JobStatus.COMPLETED, "w1")  # coalesce(NULL, …)
    assert (broken.status, broken.worker_id) == (JobStatus.FAILED, "w9")


async def test_wake_ups_are_sent_at_commit(store: PostgresStore) -> None:
    assert await store.listen()
    instance = make_instance()
    execution = make_execution(instance)
    await apply(
        store,
        InsertInstance(instance=instance),
        InsertExecution(execution=execution, input_snapshot={}),
    )
    waiting = asyncio.create_task(store.wait_for_jobs(["charge"], 5))
    await asyncio.sleep(0.05)
    async with store.transaction() as tx:
        await tx.apply_events([[InsertJob(job=make_job(execution, "other"))]], audit=True)
        await tx.apply_events([[InsertJob(job=make_job(execution, "charge"))]], audit=True)
        await asyncio.sleep(0.1)
        assert not waiting.done(), "woken before the job was committed"
    await asyncio.wait_for(waiting, 1)


async def test_a_raising_transaction_commits_nothing(store: Store) -> None:
    instance = make_instance()
    with pytest.raises(ValueError, match="abort"):
        async with store.transaction() as tx:
            await tx.apply_events([[InsertInstance(instance=instance)]], audit=True)
            assert await tx.get_instance(instance.id) == instance
            raise ValueError("abort")
    async with store.transaction() as tx:
        assert await tx.get_instance(instance.id) is None


# -- optimistic concurrency -----------------------------------------------------------------


async def test_a_save_applies_only_at_the_revision_it_read(store: Store) -> None:
    """An event that read revision n writes nothing once another event saved n first."""
    (job,) = await with_jobs(store, {})
    async with store.session() as tx:
        loaded = await tx.load_instance(job.instance_id)
    assert loaded is not None
    read = loaded.instance
    assert read.revision == 0
    first = attrs.evolve(read, variables={"winner": 1})
    second = attrs.evolve(read, variables={"winner": 2}, status=InstanceStatus.COMPLETED)
    async with store.session() as tx:
        assert await tx.apply_events([[SaveInstance(instance=first)]], audit=True) == [True]
        stale = [
            CompleteJob(job_id=job.id, worker_id="late", at=at(3)),
            SaveInstance(instance=second),
        ]
        assert await tx.apply_events([stale], audit=True) == [False]
        stored = await tx.get_instance(read.id)
        assert stored == attrs.evolve(first, revision=1)
    assert (await job_of(store, job.id)).status is JobStatus.UNLOCKED  # nothing written
    async with store.session() as tx:
        assert await tx.apply_events(
            [[SaveInstance(instance=attrs.evolve(second, revision=1))]], audit=True
        ) == [True]
        assert await tx.get_instance(read.id) == attrs.evolve(second, revision=2)


async def test_events_applied_together_succeed_or_fail_each_alone(store: Store) -> None:
    """One stale event of a batch writes nothing; the others of the batch are written."""
    (job_a,) = await with_jobs(store, {})
    (job_b,) = await with_jobs(store, {})
    async with store.session() as tx:
        loaded = await tx.load_job_events([job_a.id, job_b.id])
    state_a, state_b = loaded[job_a.id].state, loaded[job_b.id].state
    assert state_a is not None and state_b is not None
    stale_a = attrs.evolve(state_a.instance, revision=state_a.instance.revision - 1)
    events = [
        [CompleteJob(job_id=job_a.id, worker_id="w", at=at(3)), SaveInstance(instance=stale_a)],
        [
            CompleteJob(job_id=job_b.id, worker_id="w", at=at(3)),
            SaveInstance(instance=state_b.instance),
        ],
        [InsertInstance(instance=make_instance())],
    ]
    async with store.session() as tx:
        assert await tx.apply_events(events, audit=True) == [False, True, True]
    assert (await job_of(store, job_a.id)).status is JobStatus.UNLOCKED
    assert (await job_of(store, job_b.id)).status is JobStatus.COMPLETED


async def test_load_job_events_reads_jobs_instances_and_running_executions(store: Store) -> None:
    instance = make_instance()
    running = make_execution(instance, "a", started_at=at(1))
    done = make_execution(instance, "b", status=ExecutionStatus.COMPLETED, ended_at=at(1))
    job_a = make_job(running)
    await apply(
        store,
        InsertInstance(instance=instance),
        InsertExecution(execution=running, input_snapshot={}),
        InsertExecution(execution=done, input_snapshot={}),
        InsertJob(job=job_a),
    )
    async with store.session() as tx:
        assert await tx.load_job_events([job_a.id, "missing"]) == {
            job_a.id: LoadedJob(
                job=job_a, state=InstanceState(instance=instance, running=(running,))
            )
        }


async def test_commands_on_rows_inserted_by_the_same_event(store: Store) -> None:
    """One event's commands take effect in order, also on the rows it inserts itself."""
    instance = make_instance()
    execution = make_execution(instance)
    kept, ended, retried = (make_job(execution) for _ in range(3))
    timer = make_timer(execution)
    await apply(
        store,
        InsertInstance(instance=instance),
        InsertExecution(execution=execution, input_snapshot={}),
        InsertJob(job=kept),
        InsertJob(job=ended),
        InsertJob(job=retried),
        InsertTimer(timer=timer),
        FailJob(job_id=ended.id, worker_id="w9", at=at(2)),
        RetryJob(job=retried, retries_remaining=0),
        MarkTimerFired(timer_id=timer.id),
        # the event ends: its remaining open work is cancelled, what it ended stays ended
        CancelOpenWork(instance_id=instance.id, at=at(3)),
        SaveInstance(instance=attrs.evolve(instance, status=InstanceStatus.FAILED)),
    )
    assert (await job_of(store, kept.id)).status is JobStatus.CANCELLED
    failed = await job_of(store, ended.id)
    assert (failed.status, failed.worker_id) == (JobStatus.FAILED, "w9")
    assert (await job_of(store, retried.id)).status is JobStatus.CANCELLED
    async with store.session() as tx:
        assert (await tx.get_timer(timer.id)) == attrs.evolve(timer, status=TimerStatus.FIRED)
        # a new instance is inserted in its final state, at revision 0
        stored = await tx.get_instance(instance.id)
        assert stored == attrs.evolve(instance, status=InstanceStatus.FAILED)


async def test_cancelling_skips_what_the_event_ends_itself(store: Store) -> None:
    instance, executions, ids = await _with_work(store)
    e0, _e1 = executions
    async with store.session() as tx:
        loaded = await tx.load_instance(instance.id)
        assert loaded is not None
        timer = await tx.get_timer(ids["timers"][1])
        assert timer is not None
        applied = await tx.apply_events(
            [
                [
                    FailJob(job_id=ids["jobs"][0], worker_id="w1", at=at(4)),
                    MarkTimerFired(timer_id=timer.id),
                    CancelOpenWork(instance_id=instance.id, at=at(5)),
                    SaveInstance(
                        instance=attrs.evolve(loaded.instance, status=InstanceStatus.FAILED)
                    ),
                ]
            ],
            audit=True,
        )
    assert applied == [True]
    assert await _work_state(store, instance, executions, ids) == [
        ("FAILED", "COMPLETED", "CANCELLED", False),
        ("CANCELLED", "COMPLETED", "FIRED", False),
    ]
    assert e0.status is ExecutionStatus.RUNNING


# -- cancellation ---------------------------------------------------------------------------


async def _with_work(store: Store) -> tuple[Instance, list[StepExecution], dict[str, Any]]:
    """An instance with two executions, each with an open and a done job, a task and a timer."""
    instance = make_instance()
    executions = [make_execution(instance, f"s{n}") for n in range(2)]
    ids: dict[str, Any] = {"jobs": [], "done": [], "timers": []}
    commands: list[Command] = [InsertInstance(instance=instance)]
    for execution in executions:
        open_job = make_job(execution)
        done_job = make_job(execution, status=JobStatus.COMPLETED)
        timer = make_timer(execution)
        task = UserTask(
            id=new_id("U"),
            instance_id=instance.id,
            step_execution_id=execution.id,
            step_id=execution.step_id,
            status=UserTaskStatus.OPEN,
            created_at=T0,
        )
        commands += [
            InsertExecution(execution=execution, input_snapshot={}),
            InsertJob(job=open_job),
            InsertJob(job=done_job),
            InsertUserTask(task=task),
            InsertTimer(timer=timer),
        ]
        ids["jobs"].append(open_job.id)
        ids["done"].append(done_job.id)
        ids["timers"].append(timer.id)
    await apply(store, *commands)
    return instance, executions, ids


async def _work_state(
    store: Store, instance: Instance, executions: list[StepExecution], ids: dict[str, Any]
) -> list[tuple[str, str, str, bool]]:
    """Per execution: (open job status, done job status, timer status, task still open)."""
    state = []
    async with store.transaction() as tx:
        for n, execution in enumerate(executions):
            open_job = await tx.get_job(ids["jobs"][n])
            done_job = await tx.get_job(ids["done"][n])
            timer = await tx.get_timer(ids["timers"][n])
            task = await tx.open_user_task(instance.id, execution.step_id)
            assert open_job is not None and done_job is not None and timer is not None
            state.append(
                (open_job.status.value, done_job.status.value, timer.status.value, task is not None)
            )
    return state


async def test_cancel_open_work_scoping(store: Store) -> None:
    instance, executions, ids = await _with_work(store)
    bystander = await _with_work(store)
    e0, e1 = executions

    await apply(store, CancelOpenWork(instance_id=instance.id, at=at(5), execution_ids=(e0.id,)))
    assert await _work_state(store, instance, executions, ids) == [
        ("CANCELLED", "COMPLETED", "CANCELLED", False),
        ("UNLOCKED", "COMPLETED", "PENDING", True),
    ]
    await apply(
        store,
        CancelOpenWork(instance_id=instance.id, at=at(6), execution_ids=(e1.id,), timers_only=True),
    )
    assert await _work_state(store, instance, executions, ids) == [
        ("CANCELLED", "COMPLETED", "CANCELLED", False),
        ("UNLOCKED", "COMPLETED", "CANCELLED", True),
    ]
    await apply(store, CancelOpenWork(instance_id=instance.id, at=at(7)))
    assert await _work_state(store, instance, executions, ids) == [
        ("CANCELLED", "COMPLETED", "CANCELLED", False),
        ("CANCELLED", "COMPLETED", "CANCELLED", False),
    ]
    assert await _work_state(store, *bystander) == [
        ("UNLOCKED", "COMPLETED", "PENDING", True),
        ("UNLOCKED", "COMPLETED", "PENDING", True),
    ]


async def test_due_timers_order_and_open_task_choice(store: Store) -> None:
    instance = make_instance()
    execution = make_execution(instance)

    def timer(fire_at: float, timer_id: str, **changes: Any) -> Timer:
        return make_timer(execution, id=timer_id, fire_at=at(fire_at), **changes)

    def task(task_id: str, created: float, status: UserTaskStatus) -> UserTask:
        return UserTask(
            id=task_id,
            instance_id=instance.id,
            step_execution_id=execution.id,
            step_id="review",
            status=status,
            created_at=at(created),
        )

    timers = [
        timer(5, "T-b"),
        timer(5, "T-a"),
        timer(1, "T-z"),
        timer(99, "T-late"),
        timer(0, "T-fired", status=TimerStatus.FIRED),
    ]
    await apply(
        store,
        InsertInstance(instance=instance),
        InsertExecution(execution=execution, input_snapshot={}),
        *(InsertTimer(timer=t) for t in timers),
        InsertUserTask(task=task("U-old", 1, UserTaskStatus.OPEN)),
        InsertUserTask(task=task("U-new", 2, UserTaskStatus.OPEN)),
        InsertUserTask(task=task("U-done", 3, UserTaskStatus.COMPLETED)),
    )
    async with store.transaction() as tx:
        assert [t.id for t in await tx.due_timers(now=at(5), limit=10)] == ["T-z", "T-a", "T-b"]
        assert [t.id for t in await tx.due_timers(now=at(5), limit=2)] == ["T-z", "T-a"]
        assert await tx.due_timers(now=at(5), limit=0) == []
        open_task = await tx.open_user_task(instance.id, "review")
        assert open_task is not None and open_task.id == "U-new"
        assert await tx.open_user_task(instance.id, "other") is None


# -- reads ----------------------------------------------------------------------------------


async def test_list_instances_and_history(store: Store) -> None:
    rows = [
        make_instance(definition_id="a", status=InstanceStatus.ACTIVE, started_at=at(1)),
        make_instance(definition_id="a", status=InstanceStatus.COMPLETED, started_at=at(3)),
        make_instance(definition_id="b", status=InstanceStatus.ACTIVE, started_at=at(2)),
        make_instance(definition_id="a", status=InstanceStatus.ACTIVE, started_at=at(3)),
        make_instance(definition_id="b", status=InstanceStatus.ACTIVE, business_key="k"),
    ]
    first = make_execution(rows[0], "a", started_at=at(2), id="E-b")
    twin = make_execution(rows[0], "b", started_at=at(2), id="E-a")
    done = make_execution(rows[0], "c", started_at=at(1), status=ExecutionStatus.COMPLETED)
    await apply(
        store,
        *(InsertInstance(instance=i) for i in rows),
        *(InsertExecution(execution=e, input_snapshot={}) for e in (first, twin, done)),
    )

    async def listing(offset: int = 0, limit: int = 10, **filters: Any) -> tuple[int, list[int]]:
        async with store.transaction() as tx:
            page = await tx.list_instances(
                filter=InstanceFilter(**filters), offset=offset, limit=limit
            )
        return page.total, [rows.index(i) for i in page.items]

    assert await listing() == (5, [3, 1, 2, 0, 4])
    assert await listing(definition_id="a", status="ACTIVE") == (2, [3, 0])
    assert await listing(offset=1, limit=1, definition_id="a") == (3, [1])
    assert await listing(business_key="k") == (1, [4])
    assert await listing(status="FAILED") == (0, [])
    assert await listing(offset=10, limit=5) == (5, [])
    async with store.transaction() as tx:
        assert await tx.history(rows[0].id) == [done, twin, first]
        assert await tx.load_instance(rows[0].id) == InstanceState(
            instance=rows[0], running=(twin, first)
        )
        assert await tx.load_instance("missing") is None


async def test_definition_versions_listing_keyword_and_paging(store: Store) -> None:
    for definition_id, name in [
        ("b-flow", "Beta"),
        ("a-flow", "Alpha"),
        ("a-flow", "Alpha renamed"),
        ("c_flow", "100% Gamma"),
        ("cxflow", "Delta"),
        ("d-flow", "Epsilon"),
    ]:
        async with store.transaction() as tx:
            await tx.lock_definition(definition_id)
            document = {"id": definition_id, "name": name, "steps": []}
            await tx.insert_definition(
                document=document, definition_id=definition_id, name=name, uploaded_at=T0
            )

    async def listing(
        keyword: str | None, offset: int = 0, limit: int = 10
    ) -> tuple[int, list[tuple[str, int]]]:
        async with store.transaction() as tx:
            page = await tx.list_definitions(keyword=keyword, offset=offset, limit=limit)
        return page.total, [(r.id, r.version) for r in page.items]

    async with store.transaction() as tx:
        latest = await tx.latest_versions(["a-flow", "b-flow", "missing"])
        assert latest == {"a-flow": 2, "b-flow": 1}

    everything = [("a-flow", 2), ("b-flow", 1), ("c_flow", 1), ("cxflow", 1), ("d-flow", 1)]
    assert await listing(None) == (5, everything)
    assert await listing("") == (5, everything)
    assert await listing(None, offset=1, limit=2) == (5, everything[1:3])
    assert await listing(None, offset=9, limit=2) == (5, [])
    assert await listing("ALPHA REN") == (1, [("a-flow", 2)])
    assert await listing("FLOW", limit=1) == (5, [("a-flow", 2)])
    assert await listing("c_f") == (1, [("c_flow", 1)])
    assert await listing("0%") == (1, [("c_flow", 1)])
    assert await listing("\\") == (0, [])
    async with store.transaction() as tx:
        latest = await tx.latest_definition("a-flow")
        first = await tx.definition("a-flow", 1)
        assert latest is not None and (latest.version, latest.name) == (2, "Alpha renamed")
        assert first is not None and first.name == "Alpha"
        assert first.document == {"id": "a-flow", "name": "Alpha", "steps": []}
        assert await tx.definition("a-flow", 3) is None
        assert await tx.latest_definition("missing") is None
