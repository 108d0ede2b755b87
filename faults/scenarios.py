"""The six fault scenarios. Each runs real processes, injects its fault under load, waits for
every instance to complete and returns its figures and invariant violations (:class:`Result`).

``recovery_s`` is the time from the end of the last fault (a restart, PostgreSQL back, the
last kill) until every instance completed."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import harness as h


async def worker_sigkill(workdir: Path, scale: h.Scale) -> h.Result:
    """Workers SIGKILLed at random while holding jobs; a new one replaces each."""
    db = h.Database(workdir)
    dsn = await db.start()
    engine = h.Engine(workdir, "engine", dsn=dsn, data_dir=None)
    workers = h.Workers(workdir, h.FLOW_TYPES, scale.parallelism)
    try:
        await engine.start()
        async with await h.http_session() as http:
            await h.upload(http, [engine.url], h.FLOW)
            for _ in range(scale.workers):
                workers.spawn(engine.url)
            starting = asyncio.create_task(
                h.start_instances(http, [engine.url], "fault-flow", scale.instances)
            )
            await workers.wait_busy()  # worker processes take a while to start
            for _ in range(scale.kills * 2):
                await asyncio.sleep(random.uniform(0.3, 1.0))
                if await workers.kill_busy() is None:
                    break  # the load is over
                workers.spawn(engine.url)
            confirmed = await starting
            recovery = await h.settle(dsn, scale.settle_s)
        result = h.Result("worker_sigkill", instances=len(confirmed), recovery_s=recovery)
        result.extra["workers_killed"] = workers.killed
        async with h.connect(dsn) as conn:
            # jobs the killed workers held: offered again once their leases ran out
            result.extra["jobs_held_by_killed"] = await conn.fetchval(
                "SELECT count(*) FROM audit_log WHERE kind = 'job-lease-expired'"
                " AND detail->>'previousWorker' = ANY($1::text[])",
                workers.killed_ids,
            )
        return await h.check(result, dsn, confirmed, workers)
    finally:
        workers.stop()
        await engine.stop()
        await db.remove()


async def engine_sigkill(workdir: Path, scale: h.Scale) -> h.Result:
    """The engine SIGKILLed under load and started again on the same data directory (its own
    embedded PostgreSQL: the restart finds the killed engine's postmaster and takes over)."""
    data = workdir / "data"
    engine = h.Engine(workdir, "engine", dsn=None, data_dir=data)
    workers = h.Workers(workdir, h.FLOW_TYPES, scale.parallelism)
    try:
        await engine.start()
        async with await h.http_session() as http:
            await h.upload(http, [engine.url], h.FLOW)
            for _ in range(scale.workers):
                workers.spawn(engine.url)
            starting = asyncio.create_task(
                h.start_instances(http, [engine.url], "fault-flow", scale.instances)
            )
            for _ in range(scale.kills):
                await asyncio.sleep(random.uniform(0.5, 1.5))
                await workers.wait_busy()
                engine.kill()
                await asyncio.sleep(random.uniform(0.2, 1.0))
                await engine.start()
            confirmed = await starting
            recovery = await h.settle(lambda: h.embedded_dsn(data), scale.settle_s)
        result = h.Result("engine_sigkill", instances=len(confirmed), recovery_s=recovery)
        result.extra["engine_kills"] = scale.kills
        return await h.check(result, lambda: h.embedded_dsn(data), confirmed, workers)
    finally:
        workers.stop()
        engine.kill()  # a killed engine leaves its postmaster: the next start takes over
        await engine.start()
        await engine.stop()


async def postgres_restart(workdir: Path, scale: h.Scale) -> h.Result:
    """PostgreSQL stopped under load for a few seconds and started again; the engine
    reconnects by itself (no restart), the SDK keeps its completions meanwhile."""
    db = h.Database(workdir)
    dsn = await db.start()
    # A lease longer than the outage (the default 30 s in the full run): the SDK keeps its
    # completions through it, so no job should need to be offered again.
    engine = h.Engine(workdir, "engine", dsn=dsn, data_dir=None, WE_JOB_LEASE=scale.restart_lease)
    workers = h.Workers(workdir, h.FLOW_TYPES, scale.parallelism)
    try:
        await engine.start()
        async with await h.http_session() as http:
            await h.upload(http, [engine.url], h.FLOW)
            for _ in range(scale.workers):
                workers.spawn(engine.url)
            starting = asyncio.create_task(
                h.start_instances(http, [engine.url], "fault-flow", scale.instances)
            )
            await workers.wait_busy()
            await asyncio.sleep(0.5)
            await db.stop()
            down = time.monotonic()
            await asyncio.sleep(scale.pg_down_s)
            await db.start()
            h.log(f"PostgreSQL was down {time.monotonic() - down:.1f}s")
            confirmed = await starting
            recovery = await h.settle(dsn, scale.settle_s)
        result = h.Result("postgres_restart", instances=len(confirmed), recovery_s=recovery)
        result.extra["down_s"] = scale.pg_down_s
        return await h.check(result, dsn, confirmed, workers)
    finally:
        workers.stop()
        await engine.stop()
        await db.remove()


async def replica_sigkill(workdir: Path, scale: h.Scale) -> h.Result:
    """Two engines on one database under load (jobs, joins, timers), one SIGKILLed for good:
    no job held by two workers at once, no timer fired twice, no join fired twice."""
    db = h.Database(workdir)
    dsn = await db.start()
    engines = [h.Engine(workdir, f"engine{n}", dsn=dsn, data_dir=None) for n in (1, 2)]
    workers = h.Workers(workdir, h.FLOW_TYPES + ",fault-t", scale.parallelism)
    try:
        for engine in engines:
            await engine.start()
        urls = [e.url for e in engines]
        async with await h.http_session() as http:
            await h.upload(http, urls, h.FLOW, h.timer_flow(2))
            for n in range(scale.workers):
                workers.spawn(urls[n % 2])
            starting = asyncio.gather(
                h.start_instances(http, urls, "fault-flow", scale.instances),
                h.start_instances(http, urls, "fault-timer", scale.instances // 4),
            )
            await workers.wait_busy(urls[1])  # the doomed replica's workers hold jobs
            await asyncio.sleep(random.uniform(0.2, 1.0))
            engines[1].kill()
            flows, timers = await starting
            recovery = await h.settle(dsn, scale.settle_s)
        confirmed = flows + timers
        result = h.Result("replica_sigkill", instances=len(confirmed), recovery_s=recovery)
        result.extra["timers"] = len(timers)
        return await h.check(result, dsn, confirmed, workers)
    finally:
        workers.stop()
        await engines[0].stop()
        engines[1].kill()
        await db.remove()


async def timers_while_down(workdir: Path, scale: h.Scale) -> h.Result:
    """Timers that came due while every engine was down fire once after the restart."""
    db = h.Database(workdir)
    dsn = await db.start()
    engines = [h.Engine(workdir, f"engine{n}", dsn=dsn, data_dir=None) for n in (1, 2)]
    workers = h.Workers(workdir, "fault-t", scale.parallelism)
    try:
        for engine in engines:
            await engine.start()
        urls = [e.url for e in engines]
        async with await h.http_session() as http:
            await h.upload(http, urls, h.timer_flow(scale.timer_s))
            confirmed = await h.start_instances(http, urls, "fault-timer", scale.instances)
            for engine in engines:
                engine.kill()
            async with h.connect(dsn) as conn:
                pending = await conn.fetchval(
                    "SELECT count(*) FROM boundary_event_schedule WHERE status = 'PENDING'"
                )
                latest = await conn.fetchval("SELECT max(fire_at) FROM boundary_event_schedule")
                await asyncio.sleep(
                    max((latest - await conn.fetchval("SELECT now()")).total_seconds(), 0) + 1.0
                )
                overdue = await conn.fetchval(
                    "SELECT count(*) FROM boundary_event_schedule"
                    " WHERE status = 'PENDING' AND fire_at < now()"
                )
            for engine in engines:
                await engine.start()
            workers.spawn(urls[0])
            recovery = await h.settle(dsn, scale.settle_s)
        result = h.Result("timers_while_down", instances=len(confirmed), recovery_s=recovery)
        result.extra["pending_at_kill"] = pending
        result.extra["overdue_at_restart"] = overdue
        assert overdue == pending > 0, (pending, overdue)  # all came due while down
        return await h.check(result, dsn, confirmed, workers)
    finally:
        workers.stop()
        for engine in engines:
            await engine.stop()
        await db.remove()


async def chain_engine_kill(workdir: Path, scale: h.Scale) -> h.Result:
    """Chaining with the engine killed while parents complete: a parent whose last commit
    made it has its chained start recorded, and the restarted engine makes it, once."""
    db = h.Database(workdir)
    dsn = await db.start()
    engine = h.Engine(workdir, "engine", dsn=dsn, data_dir=None)
    workers = h.Workers(workdir, h.CHAIN_TYPES, scale.parallelism)
    pending_at_kill: list[int] = []
    try:
        await engine.start()
        async with await h.http_session() as http:
            await h.upload(http, [engine.url], h.CHILD, h.PARENT)
            for _ in range(scale.workers):
                workers.spawn(engine.url)
            starting = asyncio.create_task(
                h.start_instances(http, [engine.url], "fault-parent", scale.instances)
            )
            for _ in range(scale.kills):
                await asyncio.sleep(random.uniform(0.5, 1.5))
                await workers.wait_busy()
                engine.kill()
                async with h.connect(dsn) as conn:
                    pending_at_kill.append(
                        await conn.fetchval("SELECT count(*) FROM pending_chain")
                    )
                await engine.start()
            confirmed = await starting
            recovery = await h.settle(dsn, scale.settle_s)
            async with h.connect(dsn) as conn:
                # every started parent completed (settle) and has exactly one child
                parents_without_one_child = await conn.fetchval(
                    "SELECT count(*) FROM workflow_instance p"
                    " WHERE p.definition_id = 'fault-parent' AND 1 <> ("
                    "   SELECT count(*) FROM audit_log a"
                    "   WHERE a.kind = 'instance-chained' AND a.instance_id = p.id)"
                )
                children = await conn.fetchval(
                    "SELECT count(*) FROM workflow_instance WHERE definition_id = 'fault-child'"
                )
                parents = await conn.fetchval(
                    "SELECT count(*) FROM workflow_instance WHERE definition_id = 'fault-parent'"
                )
                left = await conn.fetchval("SELECT count(*) FROM pending_chain")
        result = h.Result("chain_engine_kill", instances=len(confirmed), recovery_s=recovery)
        result = await h.check(result, dsn, confirmed, workers)
        result.lost += max(parents - children, 0) + left
        result.double_advanced += max(children - parents, 0)
        result.extra["children"] = children
        result.extra["chains_pending_at_kills"] = "+".join(map(str, pending_at_kill))
        if parents_without_one_child:
            result.violations["one_child_per_parent"] = [f"{parents_without_one_child} parents"]
        return result
    finally:
        workers.stop()
        await engine.stop()
        await db.remove()


SCENARIOS = {
    "worker_sigkill": worker_sigkill,
    "engine_sigkill": engine_sigkill,
    "postgres_restart": postgres_restart,
    "replica_sigkill": replica_sigkill,
    "timers_while_down": timers_while_down,
    "chain_engine_kill": chain_engine_kill,
}
