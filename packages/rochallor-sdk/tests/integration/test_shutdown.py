"""Graceful shutdown against the real engine: drain, then hand back what did not finish."""

from __future__ import annotations

import asyncio
import datetime
import threading
import time
from typing import Any

from rochallor_sdk import Registry, Worker

from ._engine import EngineProcess
from ._support import admin, metric, service_task_flow, settings, wait_for_status, wait_until


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def test_stop_lets_the_in_flight_handler_finish_and_report(engine: EngineProcess) -> None:
    definition = {
        "id": "drain-flow",
        "name": "Drain",
        "steps": [
            {
                "id": "pack",
                "name": "Pack",
                "type": "SERVICE_TASK",
                "jobType": "pack",
                "nextStep": "ship",
            },
            {
                "id": "ship",
                "name": "Ship",
                "type": "SERVICE_TASK",
                "jobType": "ship",
                "nextStep": "end",
            },
            {"id": "end", "name": "End", "type": "END"},
        ],
    }
    started = threading.Event()
    registry = Registry()

    @registry.register("pack")
    def pack(ctx: dict[str, Any]) -> dict[str, Any]:
        started.set()
        time.sleep(1.5)
        return {"packed": True, "boxes": 2}

    async with admin(engine.rest_url, "rest") as client:
        await client.upload_definition(definition)
        instance = await client.start_instance("drain-flow", {"orderId": "o-3"})
        worker = Worker(
            registry,
            settings=settings(engine_url=engine.rest_url, shutdown_timeout=10.0),
            handle_signals=False,
        )
        async with worker:
            await wait_until(started.is_set, "the handler to start")
            stop_started = time.monotonic()
            await worker.stop()
            stop_took = time.monotonic() - stop_started
        # The stop waited for the handler (about 1.5 s), not for the 10 s timeout.
        assert 1.0 <= stop_took < 5.0, stop_took

        current = await client.get_instance(instance["id"])
        assert current["status"] == "ACTIVE", current
        assert current["currentStepIds"] == ["ship"]  # advanced past the drained step
        assert current["variables"] == {"orderId": "o-3", "packed": True, "boxes": 2}
        history = await client.get_history(instance["id"])
        assert [(h["stepId"], h["status"]) for h in history] == [
            ("pack", "COMPLETED"),
            ("ship", "RUNNING"),
        ]
    assert metric(worker, "rochallor_worker_jobs_completed_total", job_type="pack") == 1
    assert (
        metric(worker, "rochallor_worker_jobs_failed_total", job_type="pack", retryable="true") == 0
    )


async def test_handlers_outliving_the_shutdown_timeout_are_handed_back(
    short_lease_engine: EngineProcess,
) -> None:
    """A retryable hand-back puts the job straight back with one retry fewer; with no retry
    left, nothing is reported and the job comes back when the lease expires."""
    engine = short_lease_engine
    job_types = ("hang-sync", "hang-async", "hang-last")
    first_ctx: dict[str, dict[str, Any]] = {}

    first = Registry()

    @first.register("hang-sync")
    def hang_sync(ctx: dict[str, Any]) -> dict[str, Any]:
        first_ctx["hang-sync"] = ctx
        ctx["leaseLost"].wait(60)  # cooperative: returns once the job is handed back
        return {"late": True}

    @first.register("hang-async")
    async def hang_async(ctx: dict[str, Any]) -> dict[str, Any]:
        first_ctx["hang-async"] = ctx
        await asyncio.sleep(60)  # cancelled at the hand-back
        return {"late": True}

    @first.register("hang-last")
    def hang_last(ctx: dict[str, Any]) -> dict[str, Any]:
        first_ctx["hang-last"] = ctx
        ctx["leaseLost"].wait(60)
        return {"late": True}

    second_ctx: dict[str, tuple[datetime.datetime, dict[str, Any]]] = {}
    second = Registry()

    def finish(ctx: dict[str, Any]) -> dict[str, Any]:
        second_ctx[ctx["jobType"]] = (_utcnow(), ctx)
        return {"finishedBy": "second"}

    for job_type in job_types:
        second.register(job_type, finish)

    async with admin(engine.rest_url, "rest") as client:
        instances = {}
        for job_type, retries in zip(job_types, (2, 2, 0), strict=True):
            await client.upload_definition(
                service_task_flow(f"{job_type}-flow", job_type, retry_count=retries)
            )
            instances[job_type] = (await client.start_instance(f"{job_type}-flow"))["id"]

        # parallelism 3: the three jobs fill every slot, so no poll of this worker is left
        # parked on the engine at the stop (the engine would still claim jobs for it; see
        # test_long_poll.py::test_a_stopped_workers_long_poll_claims_nothing).
        first_worker = Worker(
            first,
            settings=settings(engine_url=engine.rest_url, shutdown_timeout=1.0, parallelism=3),
            handle_signals=False,
        )
        async with first_worker:
            await wait_until(lambda: len(first_ctx) == 3, "the three handlers to start")
            stop_started = time.monotonic()
            await first_worker.stop()
            stop_took = time.monotonic() - stop_started
        stopped_at = _utcnow()
        assert 1.0 <= stop_took < 3.0, stop_took
        assert all(ctx["leaseLost"].is_set() for ctx in first_ctx.values())
        for instance_id in instances.values():  # nothing failed the instances
            assert (await client.get_instance(instance_id))["status"] == "ACTIVE"

        second_worker = Worker(
            second, settings=settings(engine_url=engine.rest_url), handle_signals=False
        )
        async with second_worker:
            finals = {t: await wait_for_status(client, i) for t, i in instances.items()}

    for job_type in job_types:
        assert finals[job_type]["status"] == "COMPLETED", finals[job_type]
        # The handed-back handlers' late results were not reported.
        assert finals[job_type]["variables"] == {"finishedBy": "second"}
        assert second_ctx[job_type][1]["id"] == first_ctx[job_type]["id"]
    # Failed as retryable: one retry charged, and back in the queue at once.
    assert second_ctx["hang-sync"][1]["retriesRemaining"] == 1
    assert second_ctx["hang-async"][1]["retriesRemaining"] == 1
    for job_type in ("hang-sync", "hang-async"):
        assert second_ctx[job_type][0] - stopped_at < datetime.timedelta(seconds=2.5)
    # No retry left: not reported, so not charged; it came back only after its lease, which
    # the first worker kept extending (never less than a third of 3 s left) until the stop.
    assert second_ctx["hang-last"][1]["retriesRemaining"] == 0
    assert second_ctx["hang-last"][0] - stopped_at > datetime.timedelta(seconds=0.5)

    failed = "rochallor_worker_jobs_failed_total"
    assert metric(first_worker, failed, job_type="hang-sync", retryable="true") == 1
    assert metric(first_worker, failed, job_type="hang-async", retryable="true") == 1
    assert metric(first_worker, failed, job_type="hang-last", retryable="true") == 0
    assert metric(first_worker, "rochallor_worker_report_errors_total", operation="fail") == 0
