"""Long-poll waiters on a real PostgreSQL: woken by NOTIFY, one claim per wake-up for a group
of waiters of the same job types, an idle group costs next to nothing, and a cap on waiters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from rochallor_server.config import EngineSettings
from rochallor_server.engine.clock import SystemClock, UlidGenerator
from rochallor_server.engine.model import Job
from rochallor_server.metrics import Metrics
from rochallor_server.service.workflow_service import WorkflowService
from rochallor_server.store.postgres import PostgresStore, create_pool

from .test_scenarios import END, task, wf


async def _engine(pg_dsn: str, **settings: Any) -> AsyncIterator[WorkflowService]:
    pool = await create_pool(pg_dsn, 1, 12)
    store = PostgresStore(pool)
    assert await store.listen()
    engine = WorkflowService(
        store,
        settings=EngineSettings(**settings),
        metrics=Metrics(),
        clock=SystemClock(),
        ids=UlidGenerator(),
    )
    await engine.upload_definition(wf("lp", task("a", "lp-a", "end"), END))
    try:
        yield engine
    finally:
        engine.begin_shutdown()
        await engine.drain()
        await store.close()
        await pool.close()


@pytest.fixture
async def engine(pg_dsn: str) -> AsyncIterator[WorkflowService]:
    async for made in _engine(pg_dsn):
        yield made


def _claims(engine: WorkflowService) -> int:
    """Claim statements run so far (each poll claim is one ``poll_jobs`` transaction)."""
    value = engine.metrics.registry.get_sample_value(
        "engine_db_transaction_duration_seconds_count", {"tx_type": "poll_jobs"}
    )
    return int(value or 0)


async def _until(predicate: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def _same(job: Job) -> Job:
    return job


def _poll(engine: WorkflowService, worker: str, wait: float = 10.0) -> asyncio.Task[list[Any]]:
    return asyncio.create_task(
        engine.poll_jobs(
            worker_id=worker, job_types=["lp-a"], max_jobs=1, wait_seconds=wait, encode=_same
        )
    )


async def test_a_new_job_wakes_one_waiter_with_one_claim(engine: WorkflowService) -> None:
    polls = [_poll(engine, f"w{n}") for n in range(50)]
    await _until(lambda: engine.poll_waiters == 50 and _claims(engine) >= 50)
    before = _claims(engine)
    started = time.monotonic()

    await engine.start_instance(definition_id="lp", version=None, variables={}, business_key=None)
    await _until(lambda: sum(p.done() for p in polls) == 1)
    latency = time.monotonic() - started

    assert latency < 1.0  # woken by the notification, not by the safety re-check
    assert _claims(engine) - before <= 3  # not one claim per waiter
    [winner] = [p for p in polls if p.done()]
    assert len(winner.result()) == 1
    assert engine.poll_waiters == 49
    engine.begin_shutdown()
    rest = await asyncio.gather(*polls)
    assert sum(len(r) for r in rest) == 1


async def test_many_new_jobs_reach_as_many_waiters(engine: WorkflowService) -> None:
    polls = [_poll(engine, f"w{n}") for n in range(20)]
    await _until(lambda: engine.poll_waiters == 20)
    for _ in range(8):  # each its own transaction, each its own notification
        await engine.start_instance(
            definition_id="lp", version=None, variables={}, business_key=None
        )
    await _until(lambda: sum(p.done() for p in polls) == 8)
    claimed = [job.id for p in polls if p.done() for job in p.result()]
    assert len(claimed) == len(set(claimed)) == 8
    engine.begin_shutdown()
    await asyncio.gather(*polls)


async def test_idle_waiters_cost_one_claim_per_group_per_recheck(engine: WorkflowService) -> None:
    polls = [_poll(engine, f"w{n}", wait=30) for n in range(200)]
    await _until(lambda: engine.poll_waiters == 200 and _claims(engine) >= 200)
    before = _claims(engine)  # each poll's own first claim is done
    await asyncio.sleep(4.5)  # about two safety re-checks
    idle = _claims(engine) - before
    assert idle <= 4, idle  # 200 waiters, one group: ~1 claim per 2 s
    engine.begin_shutdown()
    assert await asyncio.gather(*polls) == [[]] * 200


@pytest.fixture
async def capped(pg_dsn: str) -> AsyncIterator[WorkflowService]:
    async for made in _engine(pg_dsn, max_poll_waiters=3):
        yield made


async def test_polls_past_the_cap_answer_at_once_and_still_claim(capped: WorkflowService) -> None:
    engine = capped
    held = [
        asyncio.create_task(
            engine.poll_jobs(
                worker_id=f"w{n}", job_types=["other"], max_jobs=1, wait_seconds=10, encode=_same
            )
        )
        for n in range(3)
    ]
    await _until(lambda: engine.poll_waiters == 3)
    started = time.monotonic()
    assert await _poll(engine, "late") == []
    assert time.monotonic() - started < 1.0
    refused = engine.metrics.registry.get_sample_value("engine_poll_waiters_refused_total")
    assert refused == 1
    # a job that is there is still handed out past the cap (one claim, no wait)
    await engine.start_instance(definition_id="lp", version=None, variables={}, business_key=None)
    assert len(await _poll(engine, "late-again")) == 1
    assert engine.poll_waiters == 3
    engine.begin_shutdown()
    assert await asyncio.gather(*held) == [[]] * 3
