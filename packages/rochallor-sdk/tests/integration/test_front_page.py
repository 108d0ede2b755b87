"""The quick start of docs/sdk.md, run as a program, drives order-fulfilment to its end."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from ._engine import EngineProcess
from ._support import (
    TRANSPORTS,
    WorkerProcess,
    admin,
    completed_steps,
    load_definition,
    wait_for_status,
)

EXPECTED_VARIABLES: dict[str, Any] = {
    "orderId": "o-1001",
    "quantity": 3,
    "amountCents": 4999,
    "express": True,
    "reservedQuantity": 3,
    "warehouse": "DUB-1",
    "paymentStatus": "CAPTURED",
    "trackingNumber": "TRK-o-1001",
    "parcels": [{"weightGrams": 1200}, {"weightGrams": 800}],
}


def _ints(value: Any) -> list[Any]:
    """Every number in ``value``, nested ones included."""
    if isinstance(value, dict):
        return [n for item in value.values() for n in _ints(item)]
    if isinstance(value, list):
        return [n for item in value for n in _ints(item)]
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else []


def _assert_exact(variables: dict[str, Any]) -> None:
    assert variables == EXPECTED_VARIABLES
    # Equal is not enough: 3 == 3.0. Integers must come back as int, whatever the transport.
    numbers = _ints(variables)
    assert len(numbers) == 5
    assert all(type(n) is int for n in numbers), numbers


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_front_page_example_completes_order_fulfilment(
    engine: EngineProcess, transport: str
) -> None:
    definition = load_definition("order-fulfilment")
    async with admin(engine.url(transport), transport) as client:
        summary = await client.upload_definition(definition)
        assert (summary["id"], summary["version"]) == ("SHOP::order-fulfilment", 1)
        instance = await client.start_instance(
            "SHOP::order-fulfilment",
            {"orderId": "o-1001", "quantity": 3, "amountCents": 4999, "express": True},
            business_key="o-1001",
        )

        worker = await WorkerProcess.start(
            "front_page_worker.py",
            engine.url(transport),
            transport,
            env={"ROCHALLOR_WORKER_LONG_POLL_WAIT": "2s"},
        )
        try:
            final = await wait_for_status(client, instance["id"])
        finally:
            # run() returns after the drain on SIGTERM: a clean exit.
            code = await worker.signal(signal.SIGTERM)
        assert code == 0, worker.describe()
        assert final["status"] == "COMPLETED", final
        _assert_exact(final["variables"])
        history = await client.get_history(instance["id"])
        assert completed_steps(history) == [
            "reserve-stock",
            "charge-payment",
            "payment-status",
            "dispatch-order",
            "end",
        ]

    # What the engine stored, read back over REST (JSON numbers keep their literal).
    async with admin(engine.rest_url, "rest") as rest:
        _assert_exact((await rest.get_instance(instance["id"]))["variables"])
