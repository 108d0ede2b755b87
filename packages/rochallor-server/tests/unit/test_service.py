"""The service layer (:class:`WorkflowService`) over :class:`InMemoryStore`: no database, no
network.

The pure core has its own tests (``test_engine_core.py``); these cover what the service adds:
versioning of uploads, lookups and their errors, claiming and long polls, leases, retries of
aborted transactions, chaining after commit, metrics, the audit switch and atomicity.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

import attrs
import pytest

from rochallor_server.config import EngineSettings
from rochallor_server.engine import commands as cmd
from rochallor_server.engine.model import (
    AuditEntry,
    InstanceStatus,
    Job,
    JobStatus,
)
from rochallor_server.errors import (
    BadRequest,
    Conflict,
    DefinitionRejected,
    NotFound,
    TransientStorageError,
)
from rochallor_server.metrics import Metrics
from rochallor_server.service.ports import InstanceFilter
from rochallor_server.service.workflow_service import WorkflowService
from rochallor_server.testing import FixedClock, InMemoryStore, SequentialIds
from rochallor_server.testing._memory import InMemorySession

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


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


def make_engine(store: InMemoryStore, **settings: Any) -> WorkflowService:
    return WorkflowService(
        store,
        settings=EngineSettings(**settings),
        metrics=Metrics(),
        clock=FixedClock(),
        ids=SequentialIds(),
    )


@pytest.fixture
def engine(store: InMemoryStore) -> WorkflowService:
    return make_engine(store)


def value(metric: Any) -> float:
    """The current value of a prometheus counter (or of one of its label children)."""
    result: float = metric._value.get()
    return result


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


def jobs_of(store: InMemoryStore, instance_id: str) -> list[Job]:
    return sorted(
        (j for j in store.tables.jobs.values() if j.instance_id == instance_id),
        key=lambda j: (j.created_at, j.id),
    )


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
    engine: WorkflowService, store: InMemoryStore
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
    assert store.tables.definitions == {}
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
    engine: WorkflowService, store: InMemoryStore
) -> None:
    instance_id = await started(engine, wf())
    cancelled = await engine.cancel_instance(instance_id, "changed my mind")
    assert (cancelled.status, cancelled.failure_reason) == (
        InstanceStatus.CANCELLED,
        "changed my mind",
    )
    assert [j.status for j in jobs_of(store, instance_id)] == [JobStatus.CANCELLED]
    assert await poll(engine, ["a"]) == []
    with pytest.raises(Conflict):
        await engine.cancel_instance(instance_id, "again")
    with pytest.raises(NotFound):
        await engine.cancel_instance("missing", "why")
    assert value(engine.metrics.instances_completed.labels("cancelled")) == 1


async def test_auto_chaining_starts_the_next_definition_after_commit(
    engine: WorkflowService, store: InMemoryStore
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
    chained = [e for e in store.tables.audit_log if e.kind == "instance-chained"]
    assert [(e.instance_id, e.detail["child"]) for e in chained] == [(parent_id, child.id)]


async def test_a_failed_chain_is_audited_on_the_parent(
    engine: WorkflowService, store: InMemoryStore
) -> None:
    parent_id = await started(
        engine, wf("A::first", end(), autoStartNextWorkflow=True, nextWorkflowId="B::missing")
    )
    await engine.drain()
    failed = [e for e in store.tables.audit_log if e.kind == "instance-chain-failed"]
    assert [(e.instance_id, e.detail["target"]) for e in failed] == [(parent_id, "B::missing")]
    assert [i.id for i in store.tables.instances.values()] == [parent_id]


# -- jobs -----------------------------------------------------------------------------------


async def test_completing_jobs_unknown_finished_and_normal(
    engine: WorkflowService, store: InMemoryStore
) -> None:
    instance_id = await started(engine, wf())
    with pytest.raises(NotFound):
        await engine.complete_job("missing", worker_id="w1", variables=None)
    (job,) = await poll(engine, ["a"])
    await engine.complete_job(job.id, worker_id="w1", variables={"x": 1})
    done = await engine.get_instance(instance_id)
    assert (done.status, done.variables) == (InstanceStatus.COMPLETED, {"x": 1})

    before = store.tables
    await engine.complete_job(job.id, worker_id="w1", variables={"x": 2})
    await engine.fail_job(job.id, worker_id="w1", error_message="late", retryable=True)
    assert store.tables == before  # finished jobs: idempotent no-ops
    assert (await engine.get_instance(instance_id)).variables == {"x": 1}


async def test_fail_job_spends_the_retry_budget_then_fails_the_instance(
    engine: WorkflowService, store: InMemoryStore
) -> None:
    instance_id = await started(engine, wf("T::wf", task("a", "end", retryCount=2), end()))
    remaining = []
    for _ in range(2):
        (job,) = await poll(engine, ["a"])
        await engine.fail_job(job.id, worker_id="w1", error_message="flaky", retryable=True)
        (stored,) = jobs_of(store, instance_id)
        assert (stored.status, stored.worker_id) == (JobStatus.UNLOCKED, None)
        remaining.append(stored.retries_remaining)
    assert remaining == [1, 0]
    assert value(engine.metrics.job_retries) == 2

    (job,) = await poll(engine, ["a"])
    await engine.fail_job(job.id, worker_id="w1", error_message="still broken", retryable=True)
    (stored,) = jobs_of(store, instance_id)
    assert stored.status is JobStatus.FAILED
    failed = await engine.get_instance(instance_id)
    assert (failed.status, failed.failure_reason) == (InstanceStatus.FAILED, "still broken")
    assert value(engine.metrics.instances_completed.labels("failed")) == 1


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
    engine: WorkflowService, store: InMemoryStore
) -> None:
    instance_id = await started(engine, wf())
    (job,) = await poll(engine, ["a"])
    clock = engine.clock
    assert isinstance(clock, FixedClock)
    clock.advance(10)
    extended = await engine.extend_job_lease(job.id, worker_id="w1")
    assert extended == clock.now() + dt.timedelta(seconds=engine.settings.job_lease_seconds)
    assert jobs_of(store, instance_id)[0].lock_expires_at == extended
    with pytest.raises(Conflict):
        await engine.extend_job_lease(job.id, worker_id="w2")
    with pytest.raises(NotFound):
        await engine.extend_job_lease("missing", worker_id="w1")
    with pytest.raises(BadRequest):
        await engine.extend_job_lease(job.id, worker_id="")
    await engine.complete_job(job.id, worker_id="w1", variables=None)
    with pytest.raises(Conflict):  # no longer leased to anyone
        await engine.extend_job_lease(job.id, worker_id="w1")


async def test_expired_leases_are_reclaimed_and_wake_pollers(
    engine: WorkflowService, store: InMemoryStore
) -> None:
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
    expired = [e for e in store.tables.audit_log if e.kind == "job-lease-expired"]
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
async def test_audit_rows_only_when_enabled(store: InMemoryStore, enabled: bool) -> None:
    engine = make_engine(store, audit_log_enabled=enabled)
    instance_id = await started(engine, wf())
    await engine.cancel_instance(instance_id, "stop")
    kinds = [e.kind for e in store.tables.audit_log]
    if enabled:
        assert kinds[0] == "definition-uploaded"
        assert {"instance-started", "instance-cancelled"} <= set(kinds)
    else:
        assert kinds == []


# -- transactions ---------------------------------------------------------------------------


async def test_a_failing_operation_leaves_the_store_unchanged(
    engine: WorkflowService, store: InMemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance_id = await started(engine, wf())
    before = store.tables
    real_apply = InMemorySession.apply_events

    async def apply_first_then_fail(
        self: InMemorySession, events: Sequence[Sequence[cmd.Command]], *, audit: bool
    ) -> list[bool]:
        await real_apply(self, [events[0][:1]], audit=audit)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(InMemorySession, "apply_events", apply_first_then_fail)
    with pytest.raises(RuntimeError, match="disk on fire"):
        await engine.start_instance(
            definition_id="T::wf", version=None, variables=None, business_key=None
        )
    with pytest.raises(RuntimeError, match="disk on fire"):
        await engine.cancel_instance(instance_id, "stop")
    assert store.tables == before
    assert value(engine.metrics.instances_started) == 1
    monkeypatch.undo()
    assert (await engine.get_instance(instance_id)).status is InstanceStatus.ACTIVE
    assert len(await poll(engine, ["a"])) == 1  # the job of the aborted start never existed


async def test_an_aborted_transaction_is_run_again(
    engine: WorkflowService, store: InMemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance_id = await started(engine, wf())
    real_apply = InMemorySession.apply_events
    calls = 0

    async def deadlock_once(
        self: InMemorySession, events: Sequence[Sequence[cmd.Command]], *, audit: bool
    ) -> list[bool]:
        nonlocal calls
        calls += 1
        applied = await real_apply(self, events, audit=audit)
        if calls == 1:
            raise TransientStorageError("deadlock detected")
        return applied

    monkeypatch.setattr(InMemorySession, "apply_events", deadlock_once)
    cancelled = await engine.cancel_instance(instance_id, "stop")
    assert calls == 2
    assert cancelled.status is InstanceStatus.CANCELLED
    assert [e.kind for e in store.tables.audit_log].count("instance-cancelled") == 1


async def test_an_event_that_lost_a_race_is_decided_again_on_fresh_state(
    engine: WorkflowService, store: InMemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another event wrote the instance between this one's read and its write: the write
    applies nothing, and the event is read and decided again."""
    instance_id = await started(engine, wf())
    [job] = await poll(engine, ["a"])
    real_load = InMemorySession.load_job_events
    loads = 0

    async def stale_first(self: InMemorySession, job_ids: Sequence[str]) -> Any:
        nonlocal loads
        loads += 1
        loaded = await real_load(self, job_ids)
        if loads == 1:
            state = loaded[job.id].state
            assert state is not None
            # as read before a concurrent event saved the instance
            stale = attrs.evolve(state.instance, revision=state.instance.revision - 1)
            loaded[job.id] = attrs.evolve(loaded[job.id], state=attrs.evolve(state, instance=stale))
        return loaded

    monkeypatch.setattr(InMemorySession, "load_job_events", stale_first)
    await engine.complete_job(job.id, worker_id="w", variables={"done": True})
    assert loads == 2
    assert value(engine.metrics.instance_conflicts) == 1
    instance = await engine.get_instance(instance_id)
    assert instance.status is InstanceStatus.COMPLETED
    assert [e.kind for e in store.tables.audit_log].count("job-completed") == 1


async def test_concurrent_events_are_written_in_batches(
    engine: WorkflowService, store: InMemoryStore
) -> None:
    await engine.upload_definition(wf())
    starts = [
        engine.start_instance(
            definition_id="T::wf", version=None, variables={"n": n}, business_key=None
        )
        for n in range(20)
    ]
    before = store.transactions
    instances = await asyncio.gather(*starts)
    assert len({i.id for i in instances}) == 20
    assert store.transactions - before <= 2  # one write per batch, not one per start
    jobs = await engine.poll_jobs(
        worker_id="w", job_types=["a"], max_jobs=20, wait_seconds=0, encode=same
    )
    assert len(jobs) == 20
    before = store.transactions
    await asyncio.gather(
        *(engine.complete_job(j.id, worker_id="w", variables={"done": j.id}) for j in jobs)
    )
    assert store.transactions - before <= 2
    sizes = engine.metrics.batch_size.labels("job_events")
    assert sizes._sum.get() == 20  # the 20 completions …
    assert sum(bucket.get() for bucket in sizes._buckets) <= 2  # … in at most two batches
    for instance in instances:
        done = await engine.get_instance(instance.id)
        assert done.status is InstanceStatus.COMPLETED
        assert done.variables["done"] in {j.id for j in jobs if j.instance_id == instance.id}


async def test_a_caller_going_away_does_not_cut_an_operation_short(
    engine: WorkflowService, store: InMemoryStore
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
    for _ in range(100):
        if any(i.definition_id == "B::next" for i in store.tables.instances.values()):
            break
        await asyncio.sleep(0.01)
    await engine.drain()
    assert (await engine.get_instance(instance_id)).status is InstanceStatus.COMPLETED
    children = [i for i in store.tables.instances.values() if i.definition_id == "B::next"]
    assert [c.variables for c in children] == [{"v": 1}]


# -- the fake itself ------------------------------------------------------------------------


async def test_the_store_commits_only_blocks_that_raise_nothing(store: InMemoryStore) -> None:
    entry = AuditEntry(kind="k", actor="a", instance_id=None, detail={"n": 1})
    with pytest.raises(ValueError, match="rollback"):
        async with store.transaction() as tx:
            await tx.apply_events([[cmd.Audit(entry=entry)]], audit=True)
            assert tx.tables.audit_log == (entry,)  # visible inside the transaction
            raise ValueError("rollback")
    assert list(store.tables.audit_log) == []
    async with store.session() as tx:
        await tx.apply_events([[cmd.Audit(entry=entry)]], audit=True)
    assert store.tables.audit_log == (entry,)
    entry.detail["n"] = 2  # the store keeps its own copy of JSON values
    assert store.tables.audit_log[0].detail == {"n": 1}


async def test_the_store_refuses_nested_transactions(store: InMemoryStore) -> None:
    async with store.transaction():
        with pytest.raises(RuntimeError, match="nested"):
            async with store.transaction():
                pass


async def test_advisory_lock_admits_one_holder(store: InMemoryStore) -> None:
    async with (
        store.advisory_lock(1) as first,
        store.advisory_lock(1) as second,
        store.advisory_lock(2) as other,
    ):
        assert (first, second, other) == (True, False, True)
    async with store.advisory_lock(1) as again:
        assert again is True


async def test_wait_for_jobs_times_out_and_close_wakes(store: InMemoryStore) -> None:
    begin = time.monotonic()
    await store.wait_for_jobs(["a"], 0.05)
    assert time.monotonic() - begin >= 0.05
    waiting = asyncio.create_task(store.wait_for_jobs(["a"], 5))
    await asyncio.sleep(0.01)
    await store.close()
    await asyncio.wait_for(waiting, 1)
