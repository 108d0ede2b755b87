"""The retry write applies only to the job as its event read it (real PostgreSQL).

A retryable failure is decided on a job read without a lock; a cancel, a completion, a lease
reclaim or another replica may change the job before the retry is written. Only real
transactions show this race: these tests interleave them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from rochallor_server.engine.commands import (
    Audit,
    Command,
    InsertExecution,
    InsertInstance,
    InsertJob,
    RetryJob,
)
from rochallor_server.engine.model import AuditEntry, Job
from rochallor_server.store.postgres import PostgresStore, create_pool

from .records import at, make_execution, make_instance, make_job


@pytest.fixture
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool[asyncpg.Record]]:
    pool = await create_pool(pg_dsn, 1, 6)
    yield pool
    await pool.close()


@pytest.fixture
async def store(pool: asyncpg.Pool[asyncpg.Record]) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(pool)
    yield store
    await store.close()


async def _claimed(store: PostgresStore, worker: str = "w1") -> Job:
    """One job of a running instance, claimed by ``worker``."""
    instance = make_instance()
    execution = make_execution(instance)
    job = make_job(execution)
    async with store.transaction() as tx:
        await tx.apply_events(
            [
                [
                    InsertInstance(instance=instance),
                    InsertExecution(execution=execution, input_snapshot={}),
                    InsertJob(job=job),
                ]
            ],
            audit=True,
        )
        (claimed,) = await tx.claim_jobs(
            worker_id=worker, job_types=["charge"], limit=1, now=at(10), lease_expires_at=at(40)
        )
    return claimed


def _retry_event(read: Job) -> list[Command]:
    """What the core decides for a retryable failure of ``read``."""
    entry = AuditEntry(kind="job-retried", actor="w1", instance_id=read.instance_id, detail={})
    return [RetryJob(job=read, retries_remaining=read.retries_remaining - 1), Audit(entry=entry)]


async def _row(pool: Any, job_id: str) -> tuple[Any, ...]:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT status, worker_id, retries_remaining FROM job WHERE id = $1", job_id
        )
        retried = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE kind = 'job-retried' AND instance_id = $1",
            (await conn.fetchval("SELECT instance_id FROM job WHERE id = $1", job_id)),
        )
    assert row is not None
    return (*row, retried)


async def _apply(store: PostgresStore, commands: list[Command]) -> bool:
    async with store.session() as tx:
        [applied] = await tx.apply_events([commands], audit=True)
    return applied


async def test_a_retry_of_a_job_reclaimed_and_claimed_by_another_worker_is_not_applied(
    store: PostgresStore, pool: Any
) -> None:
    read = await _claimed(store, "w1")  # the failing event read this
    async with store.transaction() as tx:  # meanwhile: the lease expires, w2 claims the job
        assert len(await tx.reclaim_expired_leases(now=at(41), limit=10)) == 1
        (again,) = await tx.claim_jobs(
            worker_id="w2", job_types=["charge"], limit=1, now=at(42), lease_expires_at=at(72)
        )
    assert again.id == read.id
    assert await _apply(store, _retry_event(read)) is False
    # w2 keeps its lease, the retry budget is untouched, no audit entry of a retry
    assert await _row(pool, read.id) == ("LOCKED", "w2", read.retries_remaining, 0)


async def test_a_retry_of_a_job_the_same_worker_claimed_again_is_not_applied(
    store: PostgresStore, pool: Any
) -> None:
    read = await _claimed(store, "w1")
    async with store.transaction() as tx:  # same worker id, a new lease
        await tx.reclaim_expired_leases(now=at(41), limit=10)
        await tx.claim_jobs(
            worker_id="w1", job_types=["charge"], limit=1, now=at(42), lease_expires_at=at(72)
        )
    assert await _apply(store, _retry_event(read)) is False
    assert await _row(pool, read.id) == ("LOCKED", "w1", read.retries_remaining, 0)


async def test_a_retry_of_a_job_still_as_read_applies(store: PostgresStore, pool: Any) -> None:
    read = await _claimed(store, "w1")
    assert await _apply(store, _retry_event(read)) is True
    assert await _row(pool, read.id) == ("UNLOCKED", None, read.retries_remaining - 1, 1)


async def test_a_retry_racing_a_cancel_that_commits_first_is_not_applied(
    store: PostgresStore, pool: Any
) -> None:
    """Truly concurrent: the retry's UPDATE waits on the cancel's row lock, then re-checks its
    guard on the committed row (READ COMMITTED) and finds the job CANCELLED."""
    read = await _claimed(store, "w1")
    async with pool.acquire() as holder:
        async with holder.transaction():
            # the cancel's transaction writes the job and is still open
            await holder.execute(
                "UPDATE job SET status = 'CANCELLED', ended_at = $2 WHERE id = $1",
                read.id,
                at(20),
            )
            retry = asyncio.create_task(_apply(store, _retry_event(read)))
            await asyncio.sleep(0.3)
            assert not retry.done()  # blocked on the row the cancel holds
            waiting = await holder.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            )
            assert waiting == 1
        # the cancel commits; the retry re-checks its guard on the new row version
        assert await asyncio.wait_for(retry, 10) is False
    assert await _row(pool, read.id) == ("CANCELLED", "w1", read.retries_remaining, 0)


async def test_many_retries_of_one_read_race_each_other_one_applies(
    store: PostgresStore, pool: Any
) -> None:
    """Replicas deciding the same failure report: exactly one retry is written."""
    read = await _claimed(store, "w1")
    results = await asyncio.gather(*(_apply(store, _retry_event(read)) for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    assert await _row(pool, read.id) == ("UNLOCKED", None, read.retries_remaining - 1, 1)
