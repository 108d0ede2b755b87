"""End-to-end scenarios against the engine subprocess: 2 (single step), 3 (five steps),
4 (pickup latency) and 5a (backlog burn-down).

Instances are started over REST with the SDK's ``RestClient``; jobs are run by SDK
``Worker``s whose handlers do nothing. Throughput is counted in the database (rows that
reached ``COMPLETED`` inside the measurement window), not by the load generator.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import asyncpg
from harness import BenchSettings, EngineProcess, Profiler, figure, note, percentile, ratio

from rochallor_sdk import GrpcClient, Registry, RestClient, Worker, WorkerSettings

VARIABLES = {"orderId": "o-1", "amount": 150, "customer": {"tier": "gold", "country": "FR"}}


def single_step(definition_id: str, job_type: str) -> dict[str, Any]:
    return {
        "id": definition_id,
        "name": f"Benchmark {definition_id}",
        "steps": [
            {
                "id": "task",
                "name": "Task",
                "type": "SERVICE_TASK",
                "jobType": job_type,
                "nextStep": "end",
            },
            {"id": "end", "name": "End", "type": "END"},
        ],
    }


FIVE_STEP = {
    "id": "bench-five",
    "name": "Benchmark five steps",
    "steps": [
        {
            "id": "reserve",
            "name": "Reserve",
            "type": "SERVICE_TASK",
            "jobType": "bench-five-a",
            "nextStep": "route",
        },
        {
            "id": "route",
            "name": "Route",
            "type": "DECISION",
            "conditionalNextSteps": {"amount > 100": "enrich", "amount <= 100": "enrich"},
        },
        {
            "id": "enrich",
            "name": "Enrich",
            "type": "TRANSFORMATION",
            "nextStep": "ship",
            "transformations": {"total": "${amount * 2}", "checkedBy": "bench"},
        },
        {
            "id": "ship",
            "name": "Ship",
            "type": "SERVICE_TASK",
            "jobType": "bench-five-b",
            "nextStep": "end",
        },
        {"id": "end", "name": "End", "type": "END"},
    ],
}


def jobs_completed(job_type: str) -> str:
    """The query counting the completed jobs of ``job_type`` (a constant of this module)."""
    return f"SELECT count(*) FROM job WHERE job_type = '{job_type}' AND status = 'COMPLETED'"


class Load:
    """Workers and instance starters around one engine."""

    def __init__(self, engine: EngineProcess, conn: asyncpg.Connection[Any], s: BenchSettings):
        self.engine = engine
        self.conn = conn
        self.settings = s

    def workers(
        self,
        registry: Registry,
        *,
        transport: str = "rest",
        long_poll: bool = True,
        count: int | None = None,
        parallelism: int | None = None,
    ) -> list[Worker]:
        s = self.settings
        url = self.engine.rest_url if transport == "rest" else self.engine.grpc_target
        config = WorkerSettings(
            engine_url=url,
            transport=transport,  # type: ignore[arg-type]
            parallelism=parallelism or s.parallelism,
            poll_interval=s.poll_interval,
            long_poll_wait=s.long_poll_wait if long_poll else 0.0,
            shutdown_timeout=5.0,
        )
        return [
            Worker(
                registry, settings=config, worker_id=f"bench-{transport}-{i}", handle_signals=False
            )
            for i in range(count or s.workers)
        ]

    async def count(self, sql: str, *args: object) -> int:
        value = await self.conn.fetchval(sql, *args)
        return int(value)

    async def keep_busy(
        self,
        client: RestClient,
        definition_id: str,
        finished: Callable[[], int],
        stop: asyncio.Event,
    ) -> None:
        """Start instances over REST, at most ``max_outstanding`` unfinished at any time."""
        started = [0]

        async def starter() -> None:
            while not stop.is_set():
                if started[0] - finished() >= self.settings.max_outstanding:
                    await asyncio.sleep(0.002)
                    continue
                started[0] += 1
                try:
                    await client.start_instance(definition_id, VARIABLES)
                except Exception as exc:
                    started[0] -= 1
                    note(f"start failed: {exc}")
                    await asyncio.sleep(0.1)

        await asyncio.gather(*(starter() for _ in range(self.settings.start_concurrency)))

    async def throughput(
        self,
        definition_id: str,
        registry: Registry,
        finished: Callable[[], int],
        counters: dict[str, str],
        profile: str = "",
        transport: str = "rest",
    ) -> dict[str, float]:
        """Closed-loop load for warm-up + ``e2e_s``; rates of the ``counters`` queries."""
        s = self.settings
        stop = asyncio.Event()
        async with RestClient(self.engine.rest_url) as client, contextlib.AsyncExitStack() as st:
            for worker in self.workers(registry, transport=transport):
                await st.enter_async_context(worker)
            feeder = asyncio.create_task(self.keep_busy(client, definition_id, finished, stop))
            await asyncio.sleep(s.warmup_s)
            first = {k: await self.count(q) for k, q in counters.items()}
            started = time.monotonic()
            profiler = None
            if profile:
                profiler = Profiler(self.engine.pid, profile, s.e2e_s)
                profiler.start()
            await asyncio.sleep(s.e2e_s)
            last = {k: await self.count(q) for k, q in counters.items()}
            elapsed = time.monotonic() - started
            stop.set()
            await feeder
            if profiler is not None:
                await profiler.finish()
            await self.settle(finished, 10.0)
        return {k: (last[k] - first[k]) / elapsed for k in counters}

    async def settle(self, finished: Callable[[], int], seconds: float) -> None:
        """Give the workers a moment to finish what is queued (best effort)."""
        deadline = time.monotonic() + seconds
        previous = -1
        while time.monotonic() < deadline and finished() != previous:
            previous = finished()
            await asyncio.sleep(0.5)


# -- scenarios -----------------------------------------------------------------------------


async def run_single(load: Load, raw: float | None) -> None:
    """Scenario 2: one SERVICE_TASK per instance, REST workers."""
    handled = [0]
    registry = Registry()

    @registry.register("bench-single")
    async def handle(_ctx: dict[str, Any]) -> None:
        handled[0] += 1

    async with RestClient(load.engine.rest_url) as client:
        await client.upload_definition(single_step("bench-single", "bench-single"))
    rates = await load.throughput(
        "bench-single",
        registry,
        lambda: handled[0],
        {"jobs": jobs_completed("bench-single")},
        profile=load.settings.profile,
    )
    figure("e2e_single_step_jobs_per_s", rates["jobs"])
    ratio("e2e_single_step_ratio_to_raw", rates["jobs"], raw)


async def run_five(load: Load, raw: float | None) -> None:
    """Scenario 3: task, decision, transformation, task, end."""
    handled = [0]
    registry = Registry()

    @registry.register("bench-five-a")
    async def first(_ctx: dict[str, Any]) -> None:
        return None

    @registry.register("bench-five-b")
    async def second(_ctx: dict[str, Any]) -> None:
        handled[0] += 1

    async with RestClient(load.engine.rest_url) as client:
        await client.upload_definition(FIVE_STEP)
    rates = await load.throughput(
        "bench-five",
        registry,
        lambda: handled[0],
        {
            "steps": "SELECT count(*) FROM step_execution s JOIN workflow_instance i"
            " ON i.id = s.instance_id WHERE i.definition_id = 'bench-five'"
            " AND s.status <> 'RUNNING'",
            "instances": "SELECT count(*) FROM workflow_instance"
            " WHERE definition_id = 'bench-five' AND status = 'COMPLETED'",
        },
    )
    figure("five_step_steps_per_s", rates["steps"])
    figure("five_step_instances_per_s", rates["instances"])
    ratio("five_step_steps_ratio_to_raw", rates["steps"], raw)
    ratio("five_step_instances_ratio_to_raw", rates["instances"], raw)
    # Two of the five steps are jobs: compare jobs with jobs as well.
    ratio("five_step_jobs_ratio_to_raw", 2 * rates["instances"], raw)


async def grpc_unavailable(load: Load) -> str | None:
    """``None`` when the engine answers ``PollJobs``, else the reason."""
    client = GrpcClient(load.engine.grpc_target, request_timeout=5.0)
    try:
        await client.poll(worker_id="bench-probe", job_types=["bench-probe"], max_jobs=1, wait=0)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".replace("\n", " ")
    finally:
        await client.close()
    return None


async def run_latency(load: Load, variant: str) -> None:
    """Scenario 4: open-loop starts at ``latency_rate``/s; job created → handler starts."""
    s = load.settings
    if variant == "grpc":
        reason = await grpc_unavailable(load)
        if reason is not None:
            for pct in (50, 95, 99):
                figure(f"pickup_ms_p{pct}_grpc", "unavailable")
            figure("grpc_unavailable_reason", reason)
            return
    job_type = f"bench-latency-{variant}"
    seen: dict[str, float] = {}
    expected = [float("inf")]
    all_seen = asyncio.Event()
    registry = Registry()

    @registry.register(job_type)
    async def handle(ctx: dict[str, Any]) -> None:
        seen.setdefault(ctx["id"], time.time())
        if len(seen) >= expected[0]:
            all_seen.set()

    transport = "grpc" if variant == "grpc" else "rest"
    async with RestClient(load.engine.rest_url) as client, contextlib.AsyncExitStack() as stack:
        await client.upload_definition(single_step(job_type, job_type))
        for worker in load.workers(registry, transport=transport, long_poll=variant != "poll"):
            await stack.enter_async_context(worker)
        await asyncio.sleep(0.5)  # let the workers open their first polls
        limit = asyncio.Semaphore(64)
        pending: set[asyncio.Task[None]] = set()
        failures = [0]

        async def start() -> None:
            async with limit:
                try:
                    await client.start_instance(job_type, VARIABLES)
                except Exception:
                    failures[0] += 1

        interval = 1.0 / s.latency_rate
        begin = time.monotonic()
        measure_from = time.time() + s.warmup_s
        total = round((s.warmup_s + s.latency_s) * s.latency_rate)
        for tick in range(total):
            delay = begin + tick * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(start())
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.wait(pending)
        expected[0] = total - failures[0]
        if len(seen) < expected[0]:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await all_seen.wait()
    rows = await load.conn.fetch(
        "SELECT id, created_at FROM job WHERE id = ANY($1::text[])", list(seen)
    )
    latencies = [
        (seen[row["id"]] - row["created_at"].timestamp()) * 1000
        for row in rows
        if row["created_at"].timestamp() >= measure_from
    ]
    if failures[0]:
        note(f"latency {variant}: {failures[0]} starts failed")
    if not latencies:
        for pct in (50, 95, 99):
            figure(f"pickup_ms_p{pct}_{variant}", "n/a")
        return
    for pct in (50, 95, 99):
        figure(f"pickup_ms_p{pct}_{variant}", percentile(latencies, pct))
    figure(f"pickup_rate_per_s_{variant}", len(latencies) / s.latency_s)


async def run_grpc_throughput(load: Load, raw: float | None) -> None:
    """Scenario 2 with gRPC workers (poll with ``wait_ms`` + ``CompleteJob``)."""
    reason = await grpc_unavailable(load)
    if reason is not None:
        figure("grpc_poll_complete_per_s", "unavailable")
        figure("grpc_unavailable_reason", reason)
        return
    handled = [0]
    registry = Registry()

    @registry.register("bench-grpc")
    async def handle(_ctx: dict[str, Any]) -> None:
        handled[0] += 1

    async with RestClient(load.engine.rest_url) as client:
        await client.upload_definition(single_step("bench-grpc", "bench-grpc"))
    rates = await load.throughput(
        "bench-grpc",
        registry,
        lambda: handled[0],
        {"jobs": jobs_completed("bench-grpc")},
        transport="grpc",
    )
    figure("grpc_poll_complete_per_s", rates["jobs"])
    ratio("grpc_poll_complete_ratio_to_raw", rates["jobs"], raw)


_CLONE = [
    """
    INSERT INTO workflow_instance
        (id, definition_id, definition_version, status, current_step_ids, variables,
         join_arrivals, step_attempts, started_at, completed_at, failure_reason, business_key)
    SELECT 'bl-' || lpad(g::text, 9, '0'), definition_id, definition_version, status,
           current_step_ids, variables, join_arrivals, step_attempts, started_at,
           completed_at, failure_reason, business_key
    FROM workflow_instance, generate_series(1, $2) AS g
    WHERE id = $1
    """,
    """
    INSERT INTO step_execution
        (id, instance_id, step_id, step_type, attempt_number, status, started_at, ended_at,
         input_snapshot, output_snapshot, failure_reason)
    SELECT 'bl-x-' || lpad(g::text, 9, '0'), 'bl-' || lpad(g::text, 9, '0'), step_id,
           step_type, attempt_number, status, started_at, ended_at, input_snapshot,
           output_snapshot, failure_reason
    FROM step_execution, generate_series(1, $2) AS g
    WHERE instance_id = $1
    """,
    """
    INSERT INTO job
        (id, instance_id, step_execution_id, step_id, job_type, status, worker_id, locked_at,
         lock_expires_at, retries_remaining, payload, created_at, ended_at)
    SELECT 'bl-j-' || lpad(g::text, 9, '0'), 'bl-' || lpad(g::text, 9, '0'),
           'bl-x-' || lpad(g::text, 9, '0'), step_id, job_type, status, worker_id, locked_at,
           lock_expires_at, retries_remaining, payload,
           created_at + g * interval '1 microsecond', ended_at
    FROM job, generate_series(1, $2) AS g
    WHERE instance_id = $1
    """,
]


async def run_backlog(load: Load, raw: float | None) -> None:
    """Scenario 5a: ``backlog_jobs`` queued jobs drained by REST workers.

    One instance is started through the engine; its rows (instance, step execution, job) are
    cloned in SQL, so the queued instances are exactly what the engine would have written.
    """
    s = load.settings
    job_type = "bench-backlog"
    async with RestClient(load.engine.rest_url) as client:
        await client.upload_definition(single_step(job_type, job_type))
        template = await client.start_instance(job_type, VARIABLES)
    started = time.monotonic()
    async with load.conn.transaction():
        for sql in _CLONE:
            await load.conn.execute(sql, template["id"], s.backlog_jobs - 1)
    await load.conn.execute("ANALYZE job")
    note(f"queued {s.backlog_jobs} jobs in {time.monotonic() - started:.1f}s")
    total = s.backlog_jobs
    done_sql = jobs_completed(job_type)
    registry = Registry()

    @registry.register(job_type)
    async def handle(_ctx: dict[str, Any]) -> None:
        return None

    async with contextlib.AsyncExitStack() as stack:
        started = time.monotonic()
        for worker in load.workers(registry):
            await stack.enter_async_context(worker)
        done = 0
        while done < total and time.monotonic() - started < s.backlog_max_s:
            await asyncio.sleep(0.25)
            done = await load.count(done_sql)
        elapsed = time.monotonic() - started
    rate = done / elapsed
    figure("backlog_drain_jobs_per_s", rate)
    figure("backlog_drained_jobs", f"{done}/{total}")
    ratio("backlog_drain_ratio_to_raw", rate, raw)
