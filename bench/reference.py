"""The reference call pattern, the SDK on the same work, batch starts and several engines.

The reference pattern is what the reference engine's SDKs do, spoken by a plain aiohttp
client (no SDK code): ``ref_workers`` workers, each polling ``POST /v1/jobs/poll`` with
``maxJobs`` = ``ref_max_jobs`` and no long poll (an empty poll sleeps ``poll_interval``),
completing every job it got with its own ``POST /v1/jobs/{id}/complete`` (the jobs of one poll
concurrently, as a handler per job would), then polling again.

One run: ``ref_instances`` one-step instances are started by ``ref_starters`` concurrent
clients, one ``POST /v1/instances`` each (the start rate), then the workers drain them (the
completion rate: first poll to last completion). The SDK variant drains the same kind of
batch with SDK ``Worker``s (long poll, completions sent in groups).

Every rate is divided by the raw one-at-a-time yardstick of the same run
(``raw_sql_claim_complete_single_per_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from e2e import VARIABLES, Load, jobs_completed, single_step
from harness import Profiler, figure, note, ratio

from rochallor_sdk import Registry, RestClient


async def _start_one_by_one(
    urls: Sequence[str], definition_id: str, count: int, concurrency: int
) -> float:
    """Start ``count`` instances, one request each, from ``concurrency`` clients; per second."""
    remaining = [count]
    sessions = [aiohttp.ClientSession() for _ in urls]
    body = {"definitionId": definition_id, "variables": VARIABLES}

    async def starter(n: int) -> None:
        session, url = sessions[n % len(urls)], urls[n % len(urls)]
        while remaining[0] > 0:
            remaining[0] -= 1
            async with session.post(f"{url}/v1/instances", json=body) as response:
                if response.status != 201:
                    raise RuntimeError(f"start: {response.status} {await response.text()}")
                await response.read()

    try:
        began = time.monotonic()
        await asyncio.gather(*(starter(n) for n in range(concurrency)))
        return count / (time.monotonic() - began)
    finally:
        for session in sessions:
            await session.close()


async def _plain_worker(
    session: aiohttp.ClientSession,
    url: str,
    worker_id: str,
    job_type: str,
    max_jobs: int,
    poll_interval: float,
    done: list[int],
    total: int,
) -> None:
    poll = {"workerId": worker_id, "jobTypes": [job_type], "maxJobs": max_jobs}
    completion = {"workerId": worker_id, "variables": {}}

    async def complete(job_id: str) -> None:
        async with session.post(f"{url}/v1/jobs/{job_id}/complete", json=completion) as answer:
            if answer.status != 204:
                raise RuntimeError(f"complete: {answer.status} {await answer.text()}")
            done[0] += 1
            if done[0] == total:
                done.append(time.monotonic())  # the drain's end (idle workers may still sleep)

    while done[0] < total:
        async with session.post(f"{url}/v1/jobs/poll", json=poll) as response:
            if response.status != 200:
                raise RuntimeError(f"poll: {response.status} {await response.text()}")
            jobs = (await response.json())["jobs"]
        if not jobs:
            await asyncio.sleep(poll_interval)
            continue
        await asyncio.gather(*(complete(job["id"]) for job in jobs))


async def _drain_plain(load: Load, urls: Sequence[str], job_type: str, total: int) -> float:
    s = load.settings
    done = [0]
    sessions = [aiohttp.ClientSession() for _ in range(s.ref_workers)]
    try:
        began = time.monotonic()
        async with asyncio.timeout(s.backlog_max_s):  # a stuck drain fails, never hangs
            await _plain_workers(load, urls, job_type, total, sessions, done)
        return done[0] / (done[1] - began)
    finally:
        for session in sessions:
            await session.close()


async def _plain_workers(
    load: Load,
    urls: Sequence[str],
    job_type: str,
    total: int,
    sessions: list[aiohttp.ClientSession],
    done: list[int],
) -> None:
    s = load.settings
    await asyncio.gather(
        *(
            _plain_worker(
                session,
                urls[n % len(urls)],
                f"ref-worker-{n}",
                job_type,
                s.ref_max_jobs,
                s.poll_interval,
                done,
                total,
            )
            for n, session in enumerate(sessions)
        )
    )


async def _drain_sdk(load: Load, job_type: str, total: int) -> float:
    done = [0]
    finished = asyncio.Event()
    registry = Registry()

    @registry.register(job_type)
    async def handle(_ctx: dict[str, Any]) -> None:
        done[0] += 1
        if done[0] >= total:
            finished.set()

    async with contextlib.AsyncExitStack() as stack:
        began = time.monotonic()
        s = load.settings
        for worker in load.workers(registry, count=s.ref_workers, parallelism=s.ref_max_jobs):
            await stack.enter_async_context(worker)
        async with asyncio.timeout(s.backlog_max_s):  # a stuck drain fails, never hangs
            await finished.wait()
        # The last completions are still on their way: count them where they land.
        completed = 0
        while completed < total:
            completed = await load.count(jobs_completed(job_type))
            if completed < total:
                await asyncio.sleep(0.005)
        return total / (time.monotonic() - began)


async def _upload(url: str, job_type: str) -> None:
    async with RestClient(url) as client:
        await client.upload_definition(single_step(job_type, job_type))


async def run_reference(load: Load, raw_single: float | None) -> None:
    """The reference pattern and the SDK on the same work, ``ref_runs`` times alternating."""
    s = load.settings
    url = load.engine.rest_url
    ref_rates: list[float] = []
    sdk_rates: list[float] = []
    start_rates: list[float] = []
    # CPU milliseconds per job while draining: engine, load generator
    cpu: dict[str, list[tuple[float, float]]] = {"ref": [], "sdk": []}
    start_cpu: list[float] = []  # engine CPU milliseconds per instance started
    for run in range(s.ref_runs):
        for kind in ("ref", "sdk"):
            job_type = f"bench-{kind}-{run}"
            await _upload(url, job_type)
            engine_cpu = _cpu_seconds(load.engine.pid)
            started = await _start_one_by_one([url], job_type, s.ref_instances, s.ref_starters)
            start_rates.append(started)
            start_cpu.append(1000 * (_cpu_seconds(load.engine.pid) - engine_cpu) / s.ref_instances)
            engine_cpu, load_cpu = _cpu_seconds(load.engine.pid), _cpu_seconds()
            if kind == "ref":
                profiler = None
                if s.profile and run == 0:
                    # The first seconds of the first drain (it lasts a few seconds).
                    profiler = Profiler(load.engine.pid, s.profile, 3.0)
                    profiler.start()
                rate = await _drain_plain(load, [url], job_type, s.ref_instances)
                ref_rates.append(rate)
                if profiler is not None:
                    await profiler.finish()
            else:
                rate = await _drain_sdk(load, job_type, s.ref_instances)
                sdk_rates.append(rate)
            per_job = (
                1000 * (_cpu_seconds(load.engine.pid) - engine_cpu) / s.ref_instances,
                1000 * (_cpu_seconds() - load_cpu) / s.ref_instances,
            )
            cpu[kind].append(per_job)
            note(
                f"{kind} run {run + 1}: started {started:.0f}/s, completed {rate:.0f}/s,"
                f" CPU per job while draining: engine {per_job[0]:.3f} ms,"
                f" load generator {per_job[1]:.3f} ms"
            )
            await load.conn.execute("VACUUM ANALYZE job, workflow_instance, step_execution")
    _report("ref_start_instances_per_s", start_rates, raw_single)
    _report("ref_complete_jobs_per_s", ref_rates, raw_single)
    _report("sdk_complete_jobs_per_s", sdk_rates, raw_single)
    figure("start_engine_cpu_ms_per_instance", statistics.mean(start_cpu))
    for kind, values in cpu.items():
        if values:
            figure(f"{kind}_engine_cpu_ms_per_job", statistics.mean(v[0] for v in values))
            figure(f"{kind}_loadgen_cpu_ms_per_job", statistics.mean(v[1] for v in values))


def _cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of process ``pid``, or of this process (the load generator)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _report(name: str, rates: list[float], raw_single: float | None) -> None:
    if not rates:
        return
    figure(name, statistics.mean(rates))
    figure(f"{name}_runs", " ".join(f"{r:.0f}" for r in rates))
    ratio(f"{name.removesuffix('_per_s')}_ratio_to_raw_single", statistics.mean(rates), raw_single)


async def run_batch_start(load: Load, raw_single: float | None) -> None:
    """``batch_instances`` instances started by ``POST /v1/instances/batch`` (``batch_size``
    per request, ``ref_starters`` concurrent clients), against one request per instance."""
    s = load.settings
    url = load.engine.rest_url
    job_type = "bench-batch-start"
    await _upload(url, job_type)
    item = {"definitionId": job_type, "variables": VARIABLES}
    remaining = [s.batch_instances]

    async def starter(client: RestClient) -> None:
        while remaining[0] > 0:
            size = min(s.batch_size, remaining[0])
            remaining[0] -= size
            results = await client.start_instances([item] * size)
            failed = [r for r in results if isinstance(r, Exception)]
            if failed:
                raise RuntimeError(f"batch start: {failed[0]}")

    clients = [RestClient(url) for _ in range(s.ref_starters)]
    try:
        began = time.monotonic()
        await asyncio.gather(*(starter(c) for c in clients))
        rate = s.batch_instances / (time.monotonic() - began)
    finally:
        for client in clients:
            await client.close()
    figure("batch_start_instances_per_s", rate)
    figure("batch_start_size", s.batch_size)
    ratio("batch_start_ratio_to_raw_single", rate, raw_single)
    # Leave no queue behind for the next scenarios.
    await load.conn.execute(
        "UPDATE job SET status = 'COMPLETED', ended_at = now() WHERE job_type = $1"
        " AND status = 'UNLOCKED'",
        job_type,
    )


async def run_replicas(
    loads: Sequence[Load], raw_single: float | None, label: str, urls: Sequence[str]
) -> None:
    """The reference pattern against several engines on one database: the starters and the
    workers are spread over ``urls`` round robin."""
    s = loads[0].settings
    starts: list[float] = []
    rates: list[float] = []
    for run in range(s.ref_runs):
        job_type = f"bench-{label}-{run}"
        await _upload(urls[0], job_type)
        starts.append(await _start_one_by_one(urls, job_type, s.ref_instances, s.ref_starters))
        rates.append(await _drain_plain(loads[0], urls, job_type, s.ref_instances))
        note(f"{label} run {run + 1}: started {starts[-1]:.0f}/s, completed {rates[-1]:.0f}/s")
        await loads[0].conn.execute("VACUUM ANALYZE job, workflow_instance, step_execution")
    _report(f"{label}_start_instances_per_s", starts, raw_single)
    _report(f"{label}_complete_jobs_per_s", rates, raw_single)
