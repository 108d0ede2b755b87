"""A worker started before its engine backs off without spinning, then gets to work."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rochallor_sdk import Registry, Worker

from ._engine import EngineFactory
from ._support import TRANSPORTS, admin, metric, service_task_flow, settings, wait_for_status

POLLS = "rochallor_worker_polls_total"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_worker_backs_off_while_the_engine_is_down_then_recovers(
    engine_factory: EngineFactory, transport: str
) -> None:
    engine = engine_factory(start=False)  # ports chosen, nothing listening yet
    handled: list[dict[str, Any]] = []
    registry = Registry()

    @registry.register("after-outage")
    def after_outage(ctx: dict[str, Any]) -> dict[str, Any]:
        handled.append(ctx)
        return {"handled": True}

    worker = Worker(
        registry,
        settings=settings(engine_url=engine.url(transport), transport=transport, backoff_max=2.0),
        handle_signals=False,
    )
    async with worker:
        await asyncio.sleep(2.0)  # the observation window
        errors = metric(worker, POLLS, outcome="error")
        # Backoff 0.5 s doubling (times [0.5, 1) jitter): 3 or 4 attempts in 2 s, not a loop.
        assert 2 <= errors <= 5, errors

        await asyncio.to_thread(engine.start)
        async with admin(engine.url(transport), transport) as client:
            await client.upload_definition(service_task_flow("outage-flow", "after-outage"))
            instance = await client.start_instance("outage-flow", {"n": 7})
            final = await wait_for_status(client, instance["id"], timeout=15)
        assert final["status"] == "COMPLETED", final
        assert final["variables"] == {"n": 7, "handled": True}

        # A restart on the same ports: the worker's connection breaks, and it reconnects.
        assert await asyncio.to_thread(engine.stop) == 0, engine.log()
        await asyncio.to_thread(engine.start)
        async with admin(engine.url(transport), transport) as client:
            instance = await client.start_instance("outage-flow", {"n": 8})
            final = await wait_for_status(client, instance["id"], timeout=15)
        assert final["status"] == "COMPLETED", final
        assert final["variables"] == {"n": 8, "handled": True}

    assert [ctx["variables"]["n"] for ctx in handled] == [7, 8]
    assert metric(worker, POLLS, outcome="jobs") == 2
