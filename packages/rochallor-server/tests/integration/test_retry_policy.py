"""The retry policy on real PostgreSQL: racing events of one instance, a bad event in a shared
batch, and an operation whose caller went away (``service/retry.py``, ``@_operation``)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import pytest

from rochallor_server.config import EngineSettings
from rochallor_server.engine import instance as core
from rochallor_server.engine.clock import SystemClock, UlidGenerator
from rochallor_server.engine.definitions import CompiledDefinition
from rochallor_server.engine.model import Job
from rochallor_server.metrics import Metrics
from rochallor_server.service.retry import RetryPolicy
from rochallor_server.service.workflow_service import WorkflowService
from rochallor_server.store.postgres import PostgresStore, create_pool

from .services import rows
from .test_engine_behaviour import fan_in
from .test_scenarios import END, task, wf


def _same(job: Job) -> Job:
    return job


async def _jobs(service: WorkflowService, job_type: str, count: int) -> list[Job]:
    jobs: list[Job] = []
    while len(jobs) < count:
        jobs += await service.poll_jobs(
            worker_id="w", job_types=[job_type], max_jobs=100, wait_seconds=0, encode=_same
        )
    return jobs


def _batches(service: WorkflowService) -> tuple[float, float]:
    """(events, batches) the job-events batcher has written."""
    sizes = service.metrics.batch_size.labels("job_events")
    return sizes._sum.get(), sum(bucket.get() for bucket in sizes._buckets)


async def test_concurrent_completions_of_parallel_branches_each_land_once(
    replicas: list[WorkflowService], pg_dsn: str
) -> None:
    """Sixty branches of one instance complete at once on two replicas: a second event of the
    instance in a batch runs after it, an event that lost a race to the other replica is
    decided again; every completion lands once and the join fires once."""
    a, b, _ = replicas
    branches = [f"b{n}" for n in range(60)]
    await a.upload_definition(fan_in("rp-fan", "rp-branch", branches))
    for _ in range(2):
        started = await a.start_instance(
            definition_id="rp-fan", version=None, variables=None, business_key=None
        )
        jobs = await _jobs(b, "rp-branch", len(branches))
        await asyncio.gather(
            *(
                (a if n % 2 else b).complete_job(job.id, worker_id="w", variables={job.step_id: n})
                for n, job in enumerate(jobs)
            )
        )
        instance = await a.get_instance(started.id)
        assert instance.status.value == "COMPLETED"
        assert instance.variables == {job.step_id: n for n, job in enumerate(jobs)}
        history = await a.history(started.id)
        assert [h.step_id for h in history].count("join") == 1
        counted = await rows(
            pg_dsn,
            "SELECT kind, count(*) AS n FROM audit_log WHERE instance_id = $1 GROUP BY kind",
            started.id,
        )
        kinds = {r["kind"]: r["n"] for r in counted}
        assert kinds["job-completed"] == len(branches)
        assert kinds["instance-completed"] == 1
    # each replica wrote its 60 events in more batches than one: one event per instance each
    for service in (a, b):
        events, batches = _batches(service)
        assert events >= 60 and batches > 1
    assert a.operations_in_flight == b.operations_in_flight == 0


async def test_events_of_one_instance_in_one_batch_follow_each_other_batch_after_batch(
    pg_dsn: str,
) -> None:
    """Twenty branches of one instance complete together on one replica: the first batch
    writes one of them and sends the others back, each following batch writes the next one;
    no pause, no stale decision, twenty batches in all."""
    pauses: list[float] = []

    async def pause(seconds: float) -> None:
        pauses.append(seconds)

    pool = await create_pool(pg_dsn, 1, 4)
    store = PostgresStore(pool)
    service = WorkflowService(
        store,
        settings=EngineSettings(),
        metrics=Metrics(),
        clock=SystemClock(),
        ids=UlidGenerator(),
        retry_policy=RetryPolicy(sleep=pause),
    )
    try:
        branches = [f"b{n}" for n in range(20)]
        await service.upload_definition(fan_in("rp-row", "rp-row", branches))
        started = await service.start_instance(
            definition_id="rp-row", version=None, variables=None, business_key=None
        )
        jobs = await _jobs(service, "rp-row", 20)
        await asyncio.gather(
            *(service.complete_job(j.id, worker_id="w", variables={j.step_id: 1}) for j in jobs)
        )
        assert (await service.get_instance(started.id)).status.value == "COMPLETED"
        # batches of 20, 19, … 1 events: each event sent back is in the very next batch
        assert _batches(service) == (sum(range(1, 21)), 20)
        assert pauses == []
        assert service.metrics.instance_conflicts._value.get() == 0
    finally:
        await service.drain()
        await store.close()
        await pool.close()


def _breaking(definition: CompiledDefinition, state: core.InstanceState, job: Job) -> Any:
    """A completion whose write PostgreSQL refuses (a NUL character in a jsonb value: the
    input limits keep it out of the API, so only a bug could send one)."""
    return core.complete_job(
        definition,
        state,
        job,
        worker_id="w",
        variables={"broken": "\x00"},
        now=SystemClock().now(),
        ids=UlidGenerator(),
    )


async def test_one_event_that_breaks_the_write_does_not_fail_the_others(
    replicas: list[WorkflowService], pg_dsn: str
) -> None:
    service = replicas[0]
    await service.upload_definition(wf("rp-one", task("t", "rp-one", "end"), END))
    for _ in range(12):
        await service.start_instance(
            definition_id="rp-one", version=None, variables=None, business_key=None
        )
    jobs = await _jobs(service, "rp-one", 12)
    bad = jobs[5]
    calls = [
        service._run_operation("bad", lambda: service._job_event(bad.id, _breaking))
        if job is bad
        else service.complete_job(job.id, worker_id="w", variables={"n": n})
        for n, job in enumerate(jobs)
    ]
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(outcomes[5], asyncpg.PostgresError), outcomes[5]
    assert [o for n, o in enumerate(outcomes) if n != 5] == [None] * 11
    sizes = service.metrics.batch_size.labels("job_events")
    assert sizes._sum.get() == 12 + 12  # a batch of 12 failed; then each written alone
    stored = await rows(pg_dsn, "SELECT id, status FROM job")
    assert {r["id"]: r["status"] for r in stored} == {
        j.id: ("LOCKED" if j is bad else "COMPLETED") for j in jobs
    }
    instance = await service.get_instance(bad.instance_id)
    assert instance.status.value == "ACTIVE" and "broken" not in instance.variables


async def test_an_operation_whose_caller_went_away_commits_and_drain_waits_for_it(
    replicas: list[WorkflowService], pg_dsn: str
) -> None:
    """The caller is cancelled right after the call began: the completion still commits,
    its after-commit work (the chained start) still runs, and drain() waits for both."""
    service = replicas[0]
    await service.upload_definition(wf("rp-next", task("n", "rp-next", "end"), END))
    await service.upload_definition(
        wf(
            "rp-first",
            task("t", "rp-first", "end"),
            END,
            autoStartNextWorkflow=True,
            nextWorkflowId="rp-next",
        )
    )
    started = await service.start_instance(
        definition_id="rp-first", version=None, variables=None, business_key=None
    )
    [job] = await _jobs(service, "rp-first", 1)
    # Another session holds the instance's row: the completion's write waits behind it.
    holder = await asyncpg.connect(pg_dsn)
    held = holder.transaction()
    await held.start()
    await holder.execute("SELECT 1 FROM workflow_instance WHERE id = $1 FOR UPDATE", started.id)
    try:
        call = asyncio.create_task(service.complete_job(job.id, worker_id="w", variables={"v": 1}))
        await asyncio.sleep(0.2)  # the operation has begun and waits for the row
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert service.operations_in_flight == 1
        [status] = await rows(pg_dsn, "SELECT status FROM job WHERE id = $1", job.id)
        assert status["status"] == "LOCKED"  # not written yet: drain() has to wait for it
        draining = asyncio.create_task(service.drain())
        await asyncio.sleep(0.1)
        assert not draining.done()
    finally:
        await held.rollback()
        await holder.close()

    await draining
    assert service.operations_in_flight == 0
    assert (await service.get_instance(started.id)).status.value == "COMPLETED"
    children = await rows(
        pg_dsn, "SELECT variables FROM workflow_instance WHERE definition_id = 'rp-next'"
    )
    assert len(children) == 1


async def test_the_failure_of_an_operation_whose_caller_went_away_is_logged(
    replicas: list[WorkflowService], caplog: pytest.LogCaptureFixture
) -> None:
    service = replicas[0]
    call = asyncio.create_task(service.complete_job("no-such-job", worker_id="w", variables={}))
    await asyncio.sleep(0)
    call.cancel()
    with caplog.at_level(logging.WARNING, logger="rochallor_server.service.workflow_service"):
        await service.drain()
    [record] = [r for r in caplog.records if "caller went away" in r.getMessage()]
    assert "complete_job" in record.getMessage() and "no-such-job" in record.getMessage()


async def test_drain_cancels_what_outlasts_its_grace(replicas: list[WorkflowService]) -> None:
    service = replicas[0]
    finished: list[str] = []

    async def slow() -> None:
        await asyncio.sleep(30)
        finished.append("slow")

    call = asyncio.create_task(service._run_operation("slow", slow))
    await asyncio.sleep(0)
    call.cancel()  # its caller went away
    assert service.operations_in_flight == 1
    async with asyncio.timeout(5):
        await service.drain(grace=0.2)
    assert service.operations_in_flight == 0 and finished == []
