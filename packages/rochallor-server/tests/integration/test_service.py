"""The service layer (:class:`WorkflowService`) on PostgreSQL, called directly (no network).

The pure core has its own tests (``tests/unit/test_engine_core.py``); these cover what the
service adds: versioning of uploads, lookups and their errors, claiming and long polls, leases,
retries of aborted writes and of events that lost a race, chaining after commit, metrics, the
audit switch and atomicity. What the service stored is read back through the service or with
plain SQL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest

from rochallor_server.engine import commands as cmd
from rochallor_server.engine.model import InstanceStatus, Job, JobStatus
from rochallor_server.errors import (
    BadRequest,
    Conflict,
    DefinitionRejected,
    NotFound,
    TransientStorageError,
)
from rochallor_server.service.ports import InstanceFilter
from rochallor_server.service.workflow_service import WorkflowService
from rochallor_server.store.postgres import PostgresStore
from rochallor_server.testing import FixedClock

from .records import make_execution, make_instance
from .services import (
    audit_kinds,
    check_invariants,
    database_rows,
    jobs_of,
    make_service,
    samples,
    scalar,
    value,
)

# The engine re-checks for jobs at least this often while a long poll waits; a poll that
# answers faster than this was woken, not found by the periodic re-check.
RECHECK = 0.5


def wf(definition_id: str = "T::wf", *steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    steps = steps or (task("a", "end"), end())
    return {"id": definition_id, "name": "Workflow", "steps": list(steps), **top}


def task(id: str, next: str, **extra: Any) -> dict[str, Any]:
    return {"id": id, "name": id, "type": "SERVICE_TASK", "jobType": id, "nextStep": next, **extra}


def end(id: str = "end") -> dict[str, Any]:
    return {"id": id, "name": id, "type": "END"}


def fork(*branches: str) -> tuple[dict[str, Any], ...]:
    """A parallel gateway into one SERVICE_TASK per branch (job type = branch), joined."""
    return (
        {
            "id": "fork",
            "name": "fork",
            "type": "PARALLEL_GATEWAY",
            "parallelNextSteps": list(branches),
            "joinStep": "join",
        },
        *(task(branch, "join") for branch in branches),
        {"id": "join", "name": "join", "type": "JOIN_GATEWAY", "nextStep": "end"},
        end(),
    )


@pytest.fixture
async def engine(pg_store: PostgresStore) -> AsyncIterator[WorkflowService]:
    service = make_service(pg_store)
    yield service
    await service.drain()


async def started(engine: WorkflowService, document: dict[str, Any], **variables: Any) -> str:
    await engine.upload_definition(document)
    instance = await engine.start_instance(
        definition_id=document["id"], version=None, variables=variables, business_key=None
    )
    return instance.id


def same(job: Job) -> Job:
    """A poll's encoding of a job for tests that look at the jobs themselves."""
    return job


async def poll(
    engine: WorkflowService, types: Sequence[str], *, worker: str = "w1", max_jobs: int = 10
) -> list[Job]:
    return await engine.poll_jobs(
        worker_id=worker, job_types=types, max_jobs=max_jobs, wait_seconds=0, encode=same
    )


async def session_class(store: PostgresStore) -> Any:
    """The class of the store's sessions (patched by the tests that interpose on a statement)."""
    async with store.session() as tx:
        return type(tx)


# -- definitions ----------------------------------------------------------------------------


async def test_identical_upload_returns_the_stored_version(engine: WorkflowService) -> None:
    first = await engine.upload_definition(wf())
    again = await engine.upload_definition(wf())
    assert (first.created, first.record.version) == (True, 1)
    assert (again.created, again.record) == (False, first.record)
    # A stated "version" is not part of the content.
    assert (await engine.upload_definition({**wf(), "version": 7})).created is False
    assert value(engine.metrics.definitions_uploaded) == 1


async def test_changed_uploads_get_the_next_version_even_when_content_returns(
    engine: WorkflowService,
) -> None:
    a, b = wf(), {**wf(), "name": "Renamed"}
    versions = [(await engine.upload_definition(doc)).record.version for doc in (a, b, a)]
    assert versions == [1, 2, 3]
    assert (await engine.get_definition("T::wf", None)).version == 3
    assert (await engine.get_definition("T::wf", 2)).name == "Renamed"
    for missing in (4, 0, -1, 2**31):
        with pytest.raises(NotFound, match="definition not found"):
            await engine.get_definition("T::wf", missing)
    page = await engine.list_definitions(keyword="t::W", page=0, page_size=10)
    assert (page.total, [(r.id, r.version) for r in page.items]) == (1, [("T::wf", 3)])


async def test_parse_errors_and_rule_violations_are_told_apart(
    engine: WorkflowService, pg_dsn: str
) -> None:
    with pytest.raises(BadRequest) as parse:
        await engine.upload_definition({**wf(), "steps": "nope"})
    assert not isinstance(parse.value, DefinitionRejected)
    assert parse.value.message.startswith("parse error")
    with pytest.raises(BadRequest, match="parse error"):
        await engine.upload_definition(["not", "an", "object"])

    with pytest.raises(DefinitionRejected) as rejected:
        await engine.upload_definition(wf("T::wf", task("a", "missing")))
    codes = {v.code for v in rejected.value.violations}
    assert "REF_RESOLVES" in codes
    assert all(v.message for v in rejected.value.violations)
    assert await scalar(pg_dsn, "SELECT count(*) FROM workflow_definition") == 0
    assert value(engine.metrics.definitions_uploaded) == 0


# -- instances ------------------------------------------------------------------------------


async def test_start_needs_an_existing_definition_and_version(engine: WorkflowService) -> None:
    with pytest.raises(NotFound, match='definition "nope" not found'):
        await engine.start_instance(
            definition_id="nope", version=None, variables=None, business_key=None
        )
    await engine.upload_definition(wf())
    await engine.upload_definition(wf("T::wf", task("b", "end"), end()))
    with pytest.raises(NotFound, match="version 3 not found"):
        await engine.start_instance(
            definition_id="T::wf", version=3, variables=None, business_key=None
        )
    with pytest.raises(BadRequest):
        await engine.start_instance(
            definition_id="", version=None, variables=None, business_key=None
        )

    pinned = await engine.start_instance(
        definition_id="T::wf", version=1, variables={"n": 1}, business_key="bk"
    )
    latest = await engine.start_instance(
        definition_id="T::wf", version=0, variables=None, business_key=None
    )
    assert (pinned.definition_version, pinned.current_step_ids) == (1, ("a",))
    assert (latest.definition_version, latest.current_step_ids) == (2, ("b",))
    assert await engine.get_instance(pinned.id) == pinned
    page = await engine.list_instances(
        filter=InstanceFilter(business_key="bk"), page=0, page_size=10
    )
    assert page.items == [pinned]
    assert [e.step_id for e in await engine.history(pinned.id)] == ["a"]
    with pytest.raises(NotFound):
        await engine.get_instance("missing")


async def test_cancel_closes_open_work_and_a_second_cancel_conflicts(
    engine: WorkflowService, pg_store: PostgresStore, pg_dsn: str
) -> None:
    instance_id = await started(engine, wf())
    cancelled = await engine.cancel_instance(instance_id, "changed my mind")
    assert (cancelled.status, cancelled.failure_reason) == (
        InstanceStatus.CANCELLED,
        "changed my mind",
    )
    assert [j.status for j in await jobs_of(pg_store, pg_dsn, instance_id)] == [JobStatus.CANCELLED]
    assert await poll(engine, ["a"]) == []
    with pytest.raises(Conflict):
        await engine.cancel_instance(instance_id, "again")
    with pytest.raises(NotFound):
        await engine.cancel_instance("missing", "why")
    assert value(engine.metrics.instances_completed.labels("cancelled")) == 1
    await check_invariants(pg_dsn, [instance_id])


async def test_auto_chaining_starts_the_next_definition_after_commit(
    engine: WorkflowService,
) -> None:
    await engine.upload_definition(wf("B::next"))
    parent_id = await started(
        engine,
        wf("A::first", end(), autoStartNextWorkflow=True, nextWorkflowId="B::next"),
        carried=1,
    )
    await engine.drain()
    assert (await engine.get_instance(parent_id)).status is InstanceStatus.COMPLETED
    (child,) = (
        await engine.list_instances(
            filter=InstanceFilter(definition_id="B::next"), page=0, page_size=10
        )
    ).items
    assert child.variables == {"carried": 1}
    assert child.current_step_ids == ("a",)
    audit = await engine.instance_audit(parent_id, after_id=0, limit=100)
    chained = [a.entry for a in audit if a.entry.kind == "instance-chained"]
    assert [(e.instance_id, e.detail["child"]) for e in chained] == [(parent_id, child.id)]


async def test_a_failed_chain_is_audited_on_the_parent(engine: WorkflowService) -> None:
    parent_id = await started(
        engine, wf("A::first", end(), autoStartNextWorkflow=True, nextWorkflowId="B::missing")
    )
    await engine.drain()
    audit = await engine.instance_audit(parent_id, after_id=0, limit=100)
    failed = [a.entry for a in audit if a.entry.kind == "instance-chain-failed"]
    assert [(e.instance_id, e.detail["target"]) for e in failed] == [(parent_id, "B::missing")]
    everything = await engine.list_instances(filter=InstanceFilter(), page=0, page_size=10)
    assert [i.id for i in everything.items] == [parent_id]


# -- jobs -----------------------------------------------------------------------------------


async def test_completing_jobs_unknown_finished_and_normal(
    engine: WorkflowService, pg_dsn: str
) -> None:
    instance_id = await started(engine, wf())
    with pytest.raises(NotFound):
        await engine.complete_job("missing", worker_id="w1", variables=None)
    (job,) = await poll(engine, ["a"])
    await engine.complete_job(job.id, worker_id="w1", variables={"x": 1})
    done = await engine.get_instance(instance_id)
    assert (done.status, done.variables) == (InstanceStatus.COMPLETED, {"x": 1})

    before = await database_rows(pg_dsn)
    await engine.complete_job(job.id, worker_id="w1", variables={"x": 2})
    await engine.fail_job(job.id, worker_id="w1", error_message="late", retryable=True)
    assert await database_rows(pg_dsn) == before  # finished jobs: idempotent no-ops
    assert (await engine.get_instance(instance_id)).variables == {"x": 1}


async def test_fail_job_spends_the_retry_budget_then_fails_the_instance(
    engine: WorkflowService, pg_store: PostgresStore, pg_dsn: str
) -> None:
    instance_id = await started(engine, wf("T::wf", task("a", "end", retryCount=2), end()))
    remaining = []
    for _ in range(2):
        (job,) = await poll(engine, ["a"])
        await engine.fail_job(job.id, worker_id="w1", error_message="flaky", retryable=True)
        (stored,) = await jobs_of(pg_store, pg_dsn, instance_id)
        assert (stored.status, stored.worker_id) == (JobStatus.UNLOCKED, None)
        remaining.append(stored.retries_remaining)
    assert remaining == [1, 0]
    assert value(engine.metrics.job_retries) == 2

    (job,) = await poll(engine, ["a"])
    await engine.fail_job(job.id, worker_id="w1", error_message="still broken", retryable=True)
    (stored,) = await jobs_of(pg_store, pg_dsn, instance_id)
    assert stored.status is JobStatus.FAILED
    failed = await engine.get_instance(instance_id)
    assert (failed.status, failed.failure_reason) == (InstanceStatus.FAILED, "still broken")
    assert value(engine.metrics.instances_completed.labels("failed")) == 1
    await check_invariants(pg_dsn, [instance_id])


async def test_a_non_retryable_failure_fails_at_once(engine: WorkflowService) -> None:
    instance_id = await started(engine, wf("T::wf", task("a", "end", retryCount=5), end()))
    (job,) = await poll(engine, ["a"])
    await engine.fail_job(job.id, worker_id="w1", error_message="fatal", retryable=False)
    assert (await engine.get_instance(instance_id)).status is InstanceStatus.FAILED
    assert value(engine.metrics.job_retries) == 0


async def test_poll_honours_max_jobs_and_types(engine: WorkflowService) -> None:
    document = wf()
    await engine.upload_definition(document)
    other = wf("T::other", task("b", "end"), end())
    await engine.upload_definition(other)
    for definition_id in ["T::wf"] * 3 + ["T::other"]:
        await engine.start_instance(
            definition_id=definition_id, version=None, variables=None, business_key=None
        )

    with pytest.raises(BadRequest, match="jobTypes must not be empty"):
        await poll(engine, [])
    with pytest.raises(BadRequest, match="workerId is required"):
        await poll(engine, ["a"], worker="")
    assert await poll(engine, ["a"], max_jobs=0) == []
    first = await poll(engine, ["a", "a"], max_jobs=2)
    assert [j.job_type for j in first] == ["a", "a"]
    assert all(j.status is JobStatus.LOCKED and j.worker_id == "w1" for j in first)
    assert first == sorted(first, key=lambda j: (j.created_at, j.id))
    rest = await poll(engine, ["a", "b", "c"], worker="w2")
    assert sorted(j.job_type for j in rest) == ["a", "b"]
    assert await poll(engine, ["a", "b"]) == []
    assert value(engine.metrics.empty_polls) == 1  # the one empty claim above


async def test_a_long_poll_is_woken_by_a_concurrent_start(engine: WorkflowService) -> None:
    await engine.upload_definition(wf())

    async def start_soon() -> None:
        await asyncio.sleep(0.05)
        await engine.start_instance(
            definition_id="T::wf", version=None, variables=None, business_key=None
        )

    begin = time.monotonic()
    async with asyncio.TaskGroup() as group:
        polled = group.create_task(
            engine.poll_jobs(
                worker_id="w1", job_types=["a"], max_jobs=1, wait_seconds=2, encode=same
            )
        )
        group.create_task(start_soon())
    elapsed = time.monotonic() - begin
    assert [j.job_type for j in polled.result()] == ["a"]
    assert elapsed < RECHECK * 0.8, f"poll took {elapsed:.3f}s: not woken by the new job"


async def test_a_long_poll_ignores_jobs_of_other_types(engine: WorkflowService) -> None:
    await engine.upload_definition(wf())
    begin = time.monotonic()
    polled = asyncio.create_task(
        engine.poll_jobs(
            worker_id="w1", job_types=["zzz"], max_jobs=1, wait_seconds=0.3, encode=same
        )
    )
    await engine.start_instance(
        definition_id="T::wf", version=None, variables=None, business_key=None
    )
    assert await polled == []
    assert time.monotonic() - begin >= 0.3


async def test_begin_shutdown_ends_a_waiting_long_poll(engine: WorkflowService) -> None:
    begin = time.monotonic()
    polled = asyncio.create_task(
        engine.poll_jobs(worker_id="w1", job_types=["a"], max_jobs=1, wait_seconds=2, encode=same)
    )
    await asyncio.sleep(0.05)
    engine.begin_shutdown()
    assert await polled == []
    assert time.monotonic() - begin < RECHECK * 0.8


async def test_extend_lease_only_for_the_holder(
    engine: WorkflowService, pg_store: PostgresStore, pg_dsn: str
) -> None:
    instance_id = await started(engine, wf())
    (job,) = await poll(engine, ["a"])
    clock = engine.clock
    assert isinstance(clock, FixedClock)
    clock.advance(10)
    extended = await engine.extend_job_lease(job.id, worker_id="w1")
    assert extended == clock.now() + dt.timedelta(seconds=engine.settings.job_lease_seconds)
    assert (await jobs_of(pg_store, pg_dsn, instance_id))[0].lock_expires_at == extended
    with pytest.raises(Conflict):
        await engine.extend_job_lease(job.id, worker_id="w2")
    with pytest.raises(NotFound):
        await engine.extend_job_lease("missing", worker_id="w1")
    with pytest.raises(BadRequest):
        await engine.extend_job_lease(job.id, worker_id="")
    await engine.complete_job(job.id, worker_id="w1", variables=None)
    with pytest.raises(Conflict):  # no longer leased to anyone
        await engine.extend_job_lease(job.id, worker_id="w1")


async def test_expired_leases_are_reclaimed_and_wake_pollers(engine: WorkflowService) -> None:
    instance_id = await started(engine, wf("T::wf", task("a", "end", retryCount=1), end()))
    (job,) = await poll(engine, ["a"])
    clock = engine.clock
    assert isinstance(clock, FixedClock)
    assert await engine.reclaim_expired_leases() == 0
    clock.advance(engine.settings.job_lease_seconds + 1)

    waiting = asyncio.create_task(
        engine.poll_jobs(worker_id="w2", job_types=["a"], max_jobs=1, wait_seconds=2, encode=same)
    )
    await asyncio.sleep(0.05)  # the poll is parked now
    begin = time.monotonic()
    assert await engine.reclaim_expired_leases() == 1
    (again,) = await waiting
    assert time.monotonic() - begin < RECHECK * 0.8
    assert (again.id, again.worker_id, again.retries_remaining) == (job.id, "w2", 1)
    audit = await engine.instance_audit(instance_id, after_id=0, limit=100)
    expired = [a.entry for a in audit if a.entry.kind == "job-lease-expired"]
    assert [(e.instance_id, e.detail) for e in expired] == [
        (instance_id, {"jobId": job.id, "previousWorker": "w1"})
    ]
    assert value(engine.metrics.job_timeouts) == 1


# -- metrics and audit ----------------------------------------------------------------------


async def test_metrics_follow_committed_work(engine: WorkflowService) -> None:
    m = engine.metrics
    instance_id = await started(engine, wf())
    assert value(m.instances_started) == 1
    assert value(m.steps_executed.labels("SERVICE_TASK")) == 1
    (job,) = await poll(engine, ["a"])
    await engine.complete_job(job.id, worker_id="w1", variables=None)
    assert value(m.steps_executed.labels("END")) == 1
    assert value(m.instances_completed.labels("completed")) == 1
    assert (await engine.get_instance(instance_id)).status is InstanceStatus.COMPLETED
    with pytest.raises(NotFound):  # a failed operation counts nothing
        await engine.start_instance(
            definition_id="missing", version=None, variables=None, business_key=None
        )
    assert value(m.instances_started) == 1


@pytest.mark.parametrize("enabled", [True, False])
async def test_audit_rows_only_when_enabled(
    pg_store: PostgresStore, pg_dsn: str, enabled: bool
) -> None:
    engine = make_service(pg_store, audit_log_enabled=enabled)
    instance_id = await started(engine, wf())
    await engine.cancel_instance(instance_id, "stop")
    kinds = await audit_kinds(pg_dsn)
    if enabled:
        assert kinds[0] == "definition-uploaded"
        assert {"instance-started", "instance-cancelled"} <= set(kinds)
    else:
        assert kinds == []


# -- atomicity and retries ------------------------------------------------------------------


async def test_a_failing_write_leaves_the_store_unchanged(
    engine: WorkflowService,
    pg_store: PostgresStore,
    pg_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An event's commands are one statement: when the database refuses any part of it (here
    a step execution of a missing instance, appended to the event), nothing of it is written
    and nothing is counted."""
    instance_id = await started(engine, wf())
    before = await database_rows(pg_dsn)
    session = await session_class(pg_store)
    real_apply = session.apply_events
    orphan = make_execution(make_instance())

    async def with_a_broken_command(
        self: Any, events: Sequence[Sequence[cmd.Command]], *, audit: bool
    ) -> list[bool]:
        broken = [*events[0], cmd.InsertExecution(execution=orphan, input_snapshot={})]
        applied: list[bool] = await real_apply(self, [broken, *events[1:]], audit=audit)
        return applied

    monkeypatch.setattr(session, "apply_events", with_a_broken_command)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await engine.start_instance(
            definition_id="T::wf", version=None, variables=None, business_key=None
        )
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await engine.cancel_instance(instance_id, "stop")
    assert await database_rows(pg_dsn) == before
    assert value(engine.metrics.instances_started) == 1
    assert value(engine.metrics.instances_completed.labels("cancelled")) == 0
    monkeypatch.undo()
    assert (await engine.get_instance(instance_id)).status is InstanceStatus.ACTIVE
    assert len(await poll(engine, ["a"])) == 1  # the job of the aborted start never existed


async def test_an_aborted_write_is_run_again(
    engine: WorkflowService,
    pg_store: PostgresStore,
    pg_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL aborts a deadlock victim's statement whole: the operation is run again."""
    instance_id = await started(engine, wf())
    session = await session_class(pg_store)
    real_apply = session.apply_events
    calls = 0

    async def deadlock_once(
        self: Any, events: Sequence[Sequence[cmd.Command]], *, audit: bool
    ) -> list[bool]:
        nonlocal calls
        calls += 1
        if calls == 1:  # the victim's statement: rolled back, nothing of it written
            raise TransientStorageError("deadlock detected")
        applied: list[bool] = await real_apply(self, events, audit=audit)
        return applied

    monkeypatch.setattr(session, "apply_events", deadlock_once)
    cancelled = await engine.cancel_instance(instance_id, "stop")
    assert calls == 2
    assert cancelled.status is InstanceStatus.CANCELLED
    assert (await audit_kinds(pg_dsn, instance_id)).count("instance-cancelled") == 1
    await check_invariants(pg_dsn, [instance_id])


async def test_an_event_that_lost_a_race_is_decided_again_on_fresh_state(
    pg_store: PostgresStore, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two replicas complete the two branches of one instance. Replica A reads the instance;
    before A writes, replica B completes the other branch and commits: A's write applies
    nothing (the instance moved past the revision A read), and A decides again on what B
    wrote. The join counts both arrivals; nothing is lost or done twice."""
    a = make_service(pg_store, ids_prefix="a")
    b = make_service(pg_store, ids_prefix="b")
    instance_id = await started(a, wf("T::fork", *fork("left", "right")))
    [left] = await poll(a, ["left"])
    [right] = await poll(b, ["right"])

    session = await session_class(pg_store)
    real_load = session.load_job_events
    loads: list[list[str]] = []

    async def b_commits_after_a_read(self: Any, job_ids: Sequence[str]) -> Any:
        loads.append(list(job_ids))
        loaded = await real_load(self, job_ids)
        if len(loads) == 1:  # A's first read; B's whole event runs now
            await b.complete_job(right.id, worker_id="w", variables={"right": 1})
        return loaded

    monkeypatch.setattr(session, "load_job_events", b_commits_after_a_read)
    await a.complete_job(left.id, worker_id="w", variables={"left": 1})
    assert loads == [[left.id], [right.id], [left.id]]  # A, B, A again
    assert (value(a.metrics.instance_conflicts), value(b.metrics.instance_conflicts)) == (1, 0)
    instance = await a.get_instance(instance_id)
    assert (instance.status, instance.variables) == (
        InstanceStatus.COMPLETED,
        {"left": 1, "right": 1},
    )
    assert [e.step_id for e in await a.history(instance_id)].count("join") == 1
    assert (await audit_kinds(pg_dsn, instance_id)).count("job-completed") == 2
    await check_invariants(pg_dsn, [instance_id])


async def test_concurrent_events_are_written_in_batches(engine: WorkflowService) -> None:
    writes = engine.metrics.write_duration.labels("instance")
    await engine.upload_definition(wf())
    starts = [
        engine.start_instance(
            definition_id="T::wf", version=None, variables={"n": n}, business_key=None
        )
        for n in range(20)
    ]
    before = samples(writes)
    instances = await asyncio.gather(*starts)
    assert len({i.id for i in instances}) == 20
    assert samples(writes) - before <= 2  # one write per batch, not one per start
    jobs = await engine.poll_jobs(
        worker_id="w", job_types=["a"], max_jobs=20, wait_seconds=0, encode=same
    )
    assert len(jobs) == 20
    before = samples(writes)
    await asyncio.gather(
        *(engine.complete_job(j.id, worker_id="w", variables={"done": j.id}) for j in jobs)
    )
    assert samples(writes) - before <= 2
    sizes = engine.metrics.batch_size.labels("job_events")
    assert sizes._sum.get() == 20  # the 20 completions …
    assert samples(sizes) <= 2  # … in at most two batches
    for instance in instances:
        done = await engine.get_instance(instance.id)
        assert done.status is InstanceStatus.COMPLETED
        assert done.variables["done"] in {j.id for j in jobs if j.instance_id == instance.id}


async def test_a_caller_going_away_does_not_cut_an_operation_short(
    engine: WorkflowService,
) -> None:
    """An HTTP client that hangs up cancels its handler: the operation still runs to its end,
    after-commit work (chaining) included."""
    await engine.upload_definition(wf("B::next"))
    instance_id = await started(
        engine, wf("A::first", autoStartNextWorkflow=True, nextWorkflowId="B::next")
    )
    [job] = await engine.poll_jobs(
        worker_id="w", job_types=["a"], max_jobs=1, wait_seconds=0, encode=same
    )
    call = asyncio.create_task(engine.complete_job(job.id, worker_id="w", variables={"v": 1}))
    await asyncio.sleep(0)  # the operation has started
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    children = InstanceFilter(definition_id="B::next")
    for _ in range(200):
        if (await engine.list_instances(filter=children, page=0, page_size=10)).total:
            break
        await asyncio.sleep(0.01)
    await engine.drain()
    assert (await engine.get_instance(instance_id)).status is InstanceStatus.COMPLETED
    found = (await engine.list_instances(filter=children, page=0, page_size=10)).items
    assert [c.variables for c in found] == [{"v": 1}]
