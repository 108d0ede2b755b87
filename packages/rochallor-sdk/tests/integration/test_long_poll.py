"""Long polls against the real engine: an idle worker is woken by a new job."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from rochallor_sdk import Registry, Worker

from ._engine import EngineFactory, EngineProcess
from ._support import (
    TRANSPORTS,
    admin,
    metric,
    service_task_flow,
    settings,
    wait_for_parked_poll,
    wait_for_status,
    wait_until,
)

POLLS = "rochallor_worker_polls_total"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_idle_worker_is_woken_by_a_new_job(engine: EngineProcess, transport: str) -> None:
    handler_started: list[float] = []
    registry = Registry()

    @registry.register("wake-up")
    async def wake_up(ctx: dict[str, Any]) -> dict[str, Any]:
        handler_started.append(time.monotonic())
        return {"woken": True}

    async with admin(engine.url(transport), transport) as client:
        await client.upload_definition(service_task_flow("wake-flow", "wake-up"))
        # Without long polls a new job would wait up to poll_interval = 5 s for the next poll.
        worker = Worker(
            registry,
            settings=settings(
                engine_url=engine.url(transport),
                transport=transport,
                poll_interval=5.0,
                long_poll_wait=3.0,
            ),
            handle_signals=False,
        )
        async with worker:
            await wait_for_parked_poll(engine)
            await asyncio.sleep(1.0)  # idle, with the first poll parked on the engine
            for outcome in ("jobs", "empty", "error"):
                assert metric(worker, POLLS, outcome=outcome) == 0, outcome
            created = time.monotonic()
            instance = await client.start_instance("wake-flow", {"n": 1})
            await wait_until(lambda: bool(handler_started), "the handler to start", timeout=10)
            final = await wait_for_status(client, instance["id"])

    pickup = handler_started[0] - created
    assert pickup < 2.0, f"job picked up {pickup:.2f}s after its creation"
    assert final["status"] == "COMPLETED", final
    assert final["variables"] == {"n": 1, "woken": True}
    assert metric(worker, POLLS, outcome="jobs") == 1
    assert metric(worker, POLLS, outcome="empty") == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_stopped_workers_long_poll_claims_nothing(
    engine: EngineProcess, transport: str
) -> None:
    """A worker that stops while its long poll is parked cancels that poll (the REST client
    closes the connection, the gRPC client resets the stream). The engine must not claim
    jobs for it afterwards, or they sit locked to a gone worker until the lease expires
    (30 s here)."""
    registry = Registry()
    handled: list[dict[str, Any]] = []

    @registry.register("handover")
    def handover(ctx: dict[str, Any]) -> dict[str, Any]:
        handled.append(ctx)
        return {"handledBy": ctx["variables"]["expected"]}

    async with admin(engine.url(transport), transport) as client:
        await client.upload_definition(service_task_flow("handover-flow", "handover"))
        leaving = Worker(
            registry,
            settings=settings(
                engine_url=engine.url(transport),
                transport=transport,
                worker_id="leaving",
                long_poll_wait=10.0,
            ),
            handle_signals=False,
        )
        async with leaving:
            await wait_for_parked_poll(engine)
        assert metric(leaving, POLLS, outcome="jobs") == 0

        instance = await client.start_instance("handover-flow", {"expected": "staying"})
        # A restart takes a moment; the stopped worker's poll would still be within its wait.
        await asyncio.sleep(1.0)
        staying = Worker(
            registry,
            settings=settings(
                engine_url=engine.url(transport), transport=transport, worker_id="staying"
            ),
            handle_signals=False,
        )
        async with staying:
            await wait_until(
                lambda: bool(handled),
                "the running worker to get the job (the stopped one's abandoned poll took it?)",
                timeout=4,
            )
            final = await wait_for_status(client, instance["id"])
    assert final["status"] == "COMPLETED", final
    assert final["variables"] == {"expected": "staying", "handledBy": "staying"}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_engine_stops_promptly_while_a_long_poll_is_parked(
    engine_factory: EngineFactory, transport: str
) -> None:
    """SIGTERM must not wait for parked long polls to run out (20 s here): the engine should
    end them (an empty answer) and exit, as a restart of the engine is routine."""
    engine = engine_factory()
    registry = Registry()

    @registry.register("idle")
    def idle(ctx: dict[str, Any]) -> None:
        raise AssertionError("no job was ever created")

    worker = Worker(
        registry,
        settings=settings(engine_url=engine.url(transport), transport=transport, long_poll_wait=20),
        handle_signals=False,
    )
    async with worker:
        await wait_for_parked_poll(engine)
        stop_started = time.monotonic()
        code = await asyncio.to_thread(engine.stop)
        stop_took = time.monotonic() - stop_started
    assert code == 0, engine.log()
    assert stop_took < 4.0, f"the engine took {stop_took:.1f}s to stop after SIGTERM"
