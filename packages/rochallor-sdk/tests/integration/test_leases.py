"""Leases against the real engine (3 s leases): extension, and re-delivery after a crash."""

from __future__ import annotations

import asyncio
import datetime
import signal
import time
from typing import Any

from rochallor_sdk import Registry, Worker

from ._engine import EngineProcess
from ._support import (
    TRANSPORTS,
    WorkerProcess,
    admin,
    metric,
    service_task_flow,
    settings,
    wait_for_status,
    wait_until,
)

LEASE = 3.0


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _lease_end(ctx_or_event: dict[str, Any]) -> datetime.datetime:
    return datetime.datetime.fromisoformat(ctx_or_event["lockExpiresAt"])


async def test_slow_handler_keeps_its_lease_and_is_not_redelivered(
    short_lease_engine: EngineProcess,
) -> None:
    """A 7 s handler on 3 s leases, once per transport (side by side, to save time)."""
    await asyncio.gather(*(_slow_handler(short_lease_engine, t) for t in TRANSPORTS))


async def _slow_handler(engine: EngineProcess, transport: str) -> None:
    url = engine.url(transport)
    job_type = f"slow-job-{transport}"
    slow_calls: list[dict[str, Any]] = []
    other_calls: list[dict[str, Any]] = []
    claimed_at: list[datetime.datetime] = []

    slow_registry = Registry()

    @slow_registry.register(job_type)
    async def slow(ctx: dict[str, Any]) -> dict[str, Any]:
        claimed_at.append(_utcnow())
        slow_calls.append(ctx)
        await asyncio.sleep(7)  # more than two leases
        return {"result": "from-slow", "leaseLostSeen": ctx["leaseLost"].is_set()}

    other_registry = Registry()

    @other_registry.register(job_type)
    async def other(ctx: dict[str, Any]) -> dict[str, Any]:
        other_calls.append(ctx)
        return {"result": "from-other"}

    async with admin(url, transport) as client:
        await client.upload_definition(service_task_flow(f"slow-flow-{transport}", job_type))
        instance = await client.start_instance(f"slow-flow-{transport}", {"orderId": "o-1"})

        slow_worker = Worker(
            slow_registry,
            settings=settings(engine_url=url, transport=transport),
            handle_signals=False,
        )
        other_worker = Worker(
            other_registry,
            settings=settings(engine_url=url, transport=transport, long_poll_wait=1.0),
            handle_signals=False,
        )
        async with slow_worker:
            started = time.monotonic()
            await wait_until(lambda: bool(slow_calls), f"the slow handler ({transport})")
            # The engine really leases for 3 s, so the handler outlives two leases.
            lease = (_lease_end(slow_calls[0]) - claimed_at[0]).total_seconds()
            assert 2.0 < lease <= LEASE + 0.1, (transport, lease)
            async with other_worker:
                final = await wait_for_status(client, instance["id"], timeout=20)
            handler_time = time.monotonic() - started

    assert final["status"] == "COMPLETED", (transport, final)
    assert final["variables"] == {
        "orderId": "o-1",
        "result": "from-slow",
        "leaseLostSeen": False,
    }, transport
    assert handler_time >= 6.5, transport
    assert len(slow_calls) == 1, transport
    assert other_calls == [], f"{transport}: the job was re-delivered while its lease was kept"
    # The second worker was polling the same type all along, and found nothing.
    polls = "rochallor_worker_polls_total"
    assert metric(other_worker, polls, outcome="empty") >= 3, transport
    assert metric(other_worker, polls, outcome="jobs") == 0, transport
    extensions = "rochallor_worker_lease_extensions_total"
    assert metric(slow_worker, extensions, outcome="ok") >= 2, transport
    assert metric(slow_worker, extensions, outcome="lost") == 0, transport
    assert metric(slow_worker, extensions, outcome="error") == 0, transport
    completed = "rochallor_worker_jobs_completed_total"
    assert metric(slow_worker, completed, job_type=job_type) == 1, transport


async def test_job_of_a_killed_worker_is_redelivered_after_its_lease(
    short_lease_engine: EngineProcess,
) -> None:
    engine = short_lease_engine
    rescued: list[tuple[datetime.datetime, dict[str, Any]]] = []
    registry = Registry()

    @registry.register("fragile-job")
    def rescue(ctx: dict[str, Any]) -> dict[str, Any]:
        rescued.append((_utcnow(), ctx))
        return {"handledBy": "rescuer"}

    async with admin(engine.rest_url, "rest") as client:
        await client.upload_definition(
            service_task_flow("fragile-flow", "fragile-job", retry_count=1)
        )
        instance = await client.start_instance("fragile-flow", {"orderId": "o-2"})

        doomed = await WorkerProcess.start(
            "killable_worker.py",
            engine.rest_url,
            "fragile-job",
            "doomed-worker",
            env={"ROCHALLOR_WORKER_LONG_POLL_WAIT": "2s"},
        )
        try:
            event = await doomed.next_event()
        finally:
            code = await doomed.signal(signal.SIGKILL)
        assert code == -signal.SIGKILL, doomed.describe()
        lease_end = _lease_end(event)

        rescuer = Worker(
            registry,
            settings=settings(engine_url=engine.rest_url, worker_id="rescuer"),
            handle_signals=False,
        )
        async with rescuer:
            final = await wait_for_status(client, instance["id"], timeout=20)

    assert final["status"] == "COMPLETED", final
    assert final["variables"] == {"orderId": "o-2", "handledBy": "rescuer"}
    assert len(rescued) == 1
    picked_at, ctx = rescued[0]
    assert ctx["id"] == event["jobId"]
    # Lease expiry is not a retry: the budget is untouched.
    assert ctx["retriesRemaining"] == event["retriesRemaining"] == 1
    # Not before the dead worker's lease ended, and soon after (sweeper every 200 ms). The
    # dead worker may have extended its lease once before the kill, hence the upper bound.
    assert picked_at >= lease_end - datetime.timedelta(milliseconds=50), (picked_at, lease_end)
    assert picked_at - lease_end < datetime.timedelta(seconds=LEASE + 1.5), (picked_at, lease_end)


async def test_cancelling_the_instance_takes_the_lease_away(
    short_lease_engine: EngineProcess,
) -> None:
    """The engine refuses to extend the lease of a job whose instance was cancelled: the
    sync handler sees ``leaseLost``, the async one is cancelled, and their late outcomes
    change nothing."""
    engine = short_lease_engine
    contexts: dict[str, dict[str, Any]] = {}
    async_cancelled: list[bool] = []
    registry = Registry()

    @registry.register("watchful")
    def watchful(ctx: dict[str, Any]) -> dict[str, Any]:
        contexts["watchful"] = ctx
        lost = ctx["leaseLost"].wait(20)
        return {"lateResult": True, "sawLeaseLost": lost}

    @registry.register("oblivious")
    async def oblivious(ctx: dict[str, Any]) -> dict[str, Any]:
        contexts["oblivious"] = ctx
        try:
            await asyncio.sleep(20)
        except asyncio.CancelledError:
            async_cancelled.append(True)
            raise
        return {"lateResult": True}

    async with admin(engine.rest_url, "rest") as client:
        ids = {}
        for job_type in ("watchful", "oblivious"):
            await client.upload_definition(service_task_flow(f"{job_type}-flow", job_type))
            ids[job_type] = (await client.start_instance(f"{job_type}-flow", {"n": 1}))["id"]
        worker = Worker(
            registry, settings=settings(engine_url=engine.rest_url), handle_signals=False
        )
        async with worker:
            await wait_until(lambda: len(contexts) == 2, "both handlers to start")
            for instance_id in ids.values():
                await client.cancel_instance(instance_id, reason="order withdrawn")
            # The next extension (at most 2 s after the claim) is refused.
            await wait_until(
                lambda: contexts["watchful"]["leaseLost"].is_set() and bool(async_cancelled),
                "the worker to notice the lost leases",
                timeout=6,
            )
            await wait_until(lambda: worker.in_flight == 0, "the jobs to end", timeout=5)
        for instance_id in ids.values():
            final = await client.get_instance(instance_id)
            assert final["status"] == "CANCELLED", final
            assert final["failureReason"] == "order withdrawn"
            assert final["variables"] == {"n": 1}  # the late completion was a no-op

    extensions = "rochallor_worker_lease_extensions_total"
    assert metric(worker, extensions, outcome="lost") == 2
    for job_type in ("watchful", "oblivious"):
        assert metric(worker, "rochallor_worker_leases_lost_total", job_type=job_type) == 1
    # The sync handler's result is still reported (the engine ignores it); the cancelled
    # async handler reports nothing.
    completed = "rochallor_worker_jobs_completed_total"
    assert metric(worker, completed, job_type="watchful") == 1
    assert metric(worker, completed, job_type="oblivious") == 0
    assert metric(worker, "rochallor_worker_report_errors_total", operation="complete") == 0
