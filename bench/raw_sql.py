"""Scenario 1 (raw SQL ceiling) and 5b (claiming with finished jobs in the table).

The statements are the engine's own, from ``queries.sql`` and ``apply.sql``, issued directly
with asyncpg, without the engine around them: ``claim_jobs``, and the apply statement (which
writes every event) with only the jobs' completions in it, on connections with the engine's
settings.
This is the yardstick every end-to-end figure is divided by.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import asyncpg
from harness import BenchSettings, Database, connect, figure, note, ratio

from rochallor_server.store.postgres import apply_statement
from rochallor_server.store.postgres.statements import STATEMENTS

CLAIM = STATEMENTS["claim_jobs"]
COMPLETE = apply_statement(frozenset({"job_ends"}))
JOB_TYPE = "bench-raw"
LEASE = dt.timedelta(seconds=30)

_FIXTURE = """
INSERT INTO workflow_instance (id, definition_id, definition_version, status,
                               current_step_ids, step_attempts)
VALUES ('raw-instance', 'bench-raw', 1, 'RUNNING', '{task}', '{"task": 1}');
INSERT INTO step_execution (id, instance_id, step_id, step_type, status)
VALUES ('raw-execution', 'raw-instance', 'task', 'SERVICE_TASK', 'RUNNING');
"""

# One instance and one step execution own every job: only the job table matters here.
_INSERT_JOBS = """
INSERT INTO job (id, instance_id, step_execution_id, step_id, job_type, status,
                 retries_remaining, payload, created_at, ended_at)
SELECT $1 || lpad((g + $5)::text, 10, '0'), 'raw-instance', 'raw-execution', 'task', $2, $3, 0,
       jsonb_build_object('orderId', g, 'amount', g % 1000),
       $4::timestamptz + g * interval '1 microsecond',
       CASE WHEN $3 = 'UNLOCKED' THEN NULL ELSE $4::timestamptz END
FROM generate_series(1, $6) AS g
"""


class Queue:
    """A job table with claimable jobs of one type, refilled as they are claimed."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.inserted = 0
        self.done = 0

    async def prepare(self, *, finished: int = 0, unlocked: int = 0) -> None:
        conn = await connect(self.dsn)
        try:
            await conn.execute(_FIXTURE)
            if finished:
                started = time.monotonic()
                base = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
                await conn.execute(_INSERT_JOBS, "done-", JOB_TYPE, "COMPLETED", base, 0, finished)
                note(f"inserted {finished} finished jobs in {time.monotonic() - started:.1f}s")
            if unlocked:
                await self.add(conn, unlocked)
            # Steady state of a busy table: statistics known, visibility map set.
            await conn.execute("VACUUM ANALYZE job")
        finally:
            await conn.close()

    async def add(self, conn: asyncpg.Connection[Any], count: int) -> None:
        now = dt.datetime.now(dt.UTC)
        await conn.execute(_INSERT_JOBS, "raw-", JOB_TYPE, "UNLOCKED", now, self.inserted, count)
        self.inserted += count

    async def refill(self, backlog: int, stop: asyncio.Event) -> None:
        """Keep between ``backlog`` and twice that many jobs claimable."""
        conn = await connect(self.dsn)
        try:
            while not stop.is_set():
                if self.inserted - self.done < backlog:
                    await self.add(conn, backlog)
                else:
                    await asyncio.sleep(0.002)
        finally:
            await conn.close()


async def _claimer(
    conn: asyncpg.Connection[Any], worker: str, batch: int, queue: Queue, stop: asyncio.Event
) -> None:
    types = [JOB_TYPE]
    while not stop.is_set():
        now = dt.datetime.now(dt.UTC)
        rows = await conn.fetch(CLAIM, worker, now, now + LEASE, types, batch)
        if not rows:
            await asyncio.sleep(0.001)
            continue
        ended = dt.datetime.now(dt.UTC)
        # One statement completes the whole claimed batch.
        completions = [
            {"g": None, "id": row["id"], "status": "COMPLETED", "worker_id": worker, "at": ended}
            for row in rows
        ]
        await conn.execute(COMPLETE, {"job_ends": completions})
        queue.done += len(rows)


async def claim_complete_rate(
    queue: Queue,
    *,
    batch: int,
    seconds: float,
    settings: BenchSettings,
    refill: bool = True,
    warmup: bool = True,
) -> float:
    """Jobs claimed and completed per second by ``raw_concurrency`` connections."""
    conns = [await connect(queue.dsn) for _ in range(settings.raw_concurrency)]
    stop = asyncio.Event()
    tasks = []
    try:
        if refill:
            tasks.append(asyncio.create_task(queue.refill(settings.raw_backlog, stop)))
        tasks += [
            asyncio.create_task(_claimer(conn, f"raw-worker-{i}", batch, queue, stop))
            for i, conn in enumerate(conns)
        ]
        if warmup:
            await asyncio.sleep(settings.warmup_s)
        first, started = queue.done, time.monotonic()
        await asyncio.sleep(seconds)
        last, elapsed = queue.done, time.monotonic() - started
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        for conn in conns:
            await conn.close()
    return (last - first) / elapsed


async def run_raw(db: Database, settings: BenchSettings) -> tuple[float, float]:
    """Scenario 1; returns the one-at-a-time and the batched figures (the yardsticks)."""
    queue = Queue(await db.new_database("bench_raw"))
    await queue.prepare()
    single = await claim_complete_rate(queue, batch=1, seconds=settings.raw_s, settings=settings)
    figure("raw_sql_claim_complete_single_per_s", single)
    batched = await claim_complete_rate(queue, batch=10, seconds=settings.raw_s, settings=settings)
    figure("raw_sql_claim_complete_batch10_per_s", batched)
    return single, batched


async def run_finished(db: Database, settings: BenchSettings) -> None:
    """Scenario 5b: the batched yardstick with and without finished jobs in the table, and
    the same statements draining a deep backlog (no refill)."""
    seconds = settings.claim_s
    queue = Queue(await db.new_database("bench_claim_empty"))
    await queue.prepare()
    without = await claim_complete_rate(queue, batch=10, seconds=seconds, settings=settings)
    figure("claim_without_finished_per_s", without)
    queue = Queue(await db.new_database("bench_claim_full"))
    await queue.prepare(finished=settings.finished_jobs)
    with_finished = await claim_complete_rate(queue, batch=10, seconds=seconds, settings=settings)
    figure("claim_with_1m_finished_per_s", with_finished)
    ratio("claim_with_1m_finished_ratio_to_without", with_finished, without)
    figure("claim_finished_rows", settings.finished_jobs)
    queue = Queue(await db.new_database("bench_claim_backlog"))
    await queue.prepare(unlocked=settings.backlog_jobs)
    # The first ``claim_s`` seconds of draining, from a cold start: no refill, no warm-up.
    deep = await claim_complete_rate(
        queue, batch=10, seconds=seconds, settings=settings, refill=False, warmup=False
    )
    figure("raw_sql_backlog_batch10_per_s", deep)
    ratio("raw_sql_backlog_ratio_to_without", deep, without)
