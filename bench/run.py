"""Rochallor benchmark suite: ``nox -s bench`` or ``python bench/run.py``.

Prints one ``name=value`` line per figure on stdout (progress on stderr). Figures only: no
assertion on any of them. Settings: ``BENCH_*`` variables, see ``harness.BenchSettings`` and
``docs/performance.md``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import e2e
import idle
import kafka_mode
import raw_sql
import reference
from harness import (
    BenchSettings,
    Database,
    EngineProcess,
    connect,
    figure,
    note,
)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


async def main() -> None:
    settings = BenchSettings.from_env()
    note(f"settings: {settings}")
    began = time.monotonic()
    figure("date", dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    figure("cores", _cores())
    figure("python", platform.python_version())
    durable = settings.fsync != "off"
    figure("postgres_fsync", "on" if durable else "off")
    db = Database(durable=durable)
    await asyncio.to_thread(db.start)
    try:
        conn = await connect(db.cluster.dsn)
        figure("postgres_version", await conn.fetchval("SHOW server_version"))
        await conn.close()
        raw: float | None = None
        raw_single: float | None = None
        if "raw" in settings.scenarios:
            note("scenario 1: raw SQL ceiling")
            raw_single, raw = await raw_sql.run_raw(db, settings)
        if "finished" in settings.scenarios:
            note("scenario 5b: claiming with finished jobs in the table")
            await raw_sql.run_finished(db, settings)
        engine_scenarios = {"ref", "single", "batch", "grpc", "five", "latency", "backlog", "idle"}
        if engine_scenarios & set(settings.scenarios):
            await _engine_scenarios(db, settings, raw, raw_single)
        if "replicas" in settings.scenarios:
            await _replica_scenarios(db, settings, raw_single)
        if "kafka" in settings.scenarios:
            note("scenario 8: kafka_outbox dispatch (real broker)")
            await kafka_mode.run(db, settings)
    finally:
        await asyncio.to_thread(db.stop)
    figure("bench_seconds", round(time.monotonic() - began, 1))


async def _engine_scenarios(
    db: Database, settings: BenchSettings, raw: float | None, raw_single: float | None
) -> None:
    dsn = await db.new_database("bench_engine")
    engine = EngineProcess(dsn)
    await engine.start_async()
    conn = await connect(dsn)
    load = e2e.Load(engine, conn, settings)
    try:
        if "ref" in settings.scenarios:
            note("reference call pattern and SDK workers, one-step instances")
            await reference.run_reference(load, raw_single)
        if "batch" in settings.scenarios:
            note("batch start")
            await reference.run_batch_start(load, raw_single)
        if "single" in settings.scenarios:
            note("scenario 2: end-to-end single step (REST)")
            await e2e.run_single(load, raw)
        if "grpc" in settings.scenarios:
            note("scenario 2 over gRPC")
            await e2e.run_grpc_throughput(load, raw)
        if "five" in settings.scenarios:
            note("scenario 3: five steps")
            await e2e.run_five(load, raw)
        if "latency" in settings.scenarios:
            # Measure a steady state, not the clean-up of the throughput bursts before (with
            # 2 cores, autovacuum of their dead rows competes with the engine for CPU).
            await conn.execute("VACUUM ANALYZE")
            await asyncio.sleep(2)
            for variant in ("poll", "longpoll", "grpc"):
                note(f"scenario 4: pickup latency, {variant}")
                await e2e.run_latency(load, variant)
        if "backlog" in settings.scenarios:
            note("scenario 5a: backlog burn-down")
            await e2e.run_backlog(load, raw)
        if "idle" in settings.scenarios:
            note("scenario 7: idle long polls")
            await idle.run_idle(engine, conn, settings)
        rss, peak = engine.rss_mb()
        figure("server_rss_mb", rss)
        figure("server_rss_peak_mb", peak)
    finally:
        await conn.close()
        await engine.stop_async()


async def _replica_scenarios(
    db: Database, settings: BenchSettings, raw_single: float | None
) -> None:
    """The reference pattern against two engine processes on one database: two replicas
    (two ports, clients spread over them) and ``WE_PROCESSES=2`` (one port)."""
    dsn = await db.new_database("bench_replicas")
    engines = [EngineProcess(dsn), EngineProcess(dsn)]
    conn = await connect(dsn)
    try:
        for engine in engines:
            await engine.start_async()
        loads = [e2e.Load(engine, conn, settings) for engine in engines]
        note("reference call pattern, 2 replicas")
        await reference.run_replicas(loads, raw_single, "replicas2", [e.rest_url for e in engines])
    finally:
        for engine in engines:
            await engine.stop_async()
    processes = EngineProcess(dsn, processes=2)
    try:
        await processes.start_async()
        note("reference call pattern, WE_PROCESSES=2")
        await reference.run_replicas(
            [e2e.Load(processes, conn, settings)],
            raw_single,
            "processes2",
            [processes.rest_url],
        )
    finally:
        await conn.close()
        await processes.stop_async()


def _run() -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())


if __name__ == "__main__":
    _run()
