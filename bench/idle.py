"""Scenario 6: the idle cost of long polls.

``BENCH_IDLE_WAITERS`` REST long polls (``waitMs`` 60 s) wait on a job type nobody creates;
after ``BENCH_IDLE_SETTLE_S`` seconds (the polls' first claims are done, and PostgreSQL has
flushed their statistics), over ``BENCH_IDLE_S`` seconds: the engine's own transactions per
second (from its metrics: every transaction it runs, sweepers included), the database's
committed transactions per second (``pg_stat_database``, which lags by up to 10 s) and the
engine process's CPU. Each poll is renewed when it answers."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
from harness import BenchSettings, EngineProcess, figure, note

_TX_COUNT = re.compile(r"^engine_db_transaction_duration_seconds_count\{[^}]*\} (\S+)$", re.M)

_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (``/proc/<pid>/stat``)."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


async def _commits(conn: Any) -> int:
    return int(
        await conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"
        )
    )


async def _engine_transactions(session: aiohttp.ClientSession, engine: EngineProcess) -> float:
    async with session.get(f"http://127.0.0.1:{engine.metrics_port}/metrics") as response:
        text = await response.text()
    return sum(float(value) for value in _TX_COUNT.findall(text))


async def run_idle(engine: EngineProcess, conn: Any, settings: BenchSettings) -> None:
    waiters = settings.idle_waiters
    stop = asyncio.Event()
    answered = 0

    async def waiter(session: aiohttp.ClientSession, n: int) -> None:
        nonlocal answered
        body = {"workerId": f"idle-{n}", "jobTypes": ["bench-idle"], "maxJobs": 1, "waitMs": 60000}
        while not stop.is_set():
            async with session.post(f"{engine.rest_url}/v1/jobs/poll", json=body) as response:
                await response.read()
                answered += 1

    connector = aiohttp.TCPConnector(limit=waiters + 10)
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [asyncio.create_task(waiter(session, n)) for n in range(waiters)]
        await asyncio.sleep(settings.idle_settle_s)
        first = answered
        own = await _engine_transactions(session, engine)
        commits, cpu, began = await _commits(conn), _cpu_seconds(engine.pid), time.monotonic()
        await asyncio.sleep(settings.idle_s)
        elapsed = time.monotonic() - began
        own_tx = (await _engine_transactions(session, engine) - own) / elapsed
        tx = (await _commits(conn) - commits - 1) / elapsed  # minus the reading itself
        used = (_cpu_seconds(engine.pid) - cpu) / elapsed
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    note(f"{waiters} idle long polls; {answered - first} answered during the measurement")
    figure("idle_waiters", waiters)
    figure("idle_engine_tx_per_s", round(own_tx, 2))
    figure("idle_db_tx_per_s", round(tx, 1))
    figure("idle_engine_cpu_pct", round(100 * used, 1))
