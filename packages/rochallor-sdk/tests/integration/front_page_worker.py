"""The quick start of docs/sdk.md as a program, plus the other two order-fulfilment handlers.

``python front_page_worker.py ENGINE_URL TRANSPORT`` runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

from rochallor_sdk import Registry, Worker
from rochallor_sdk._config import Transport


class _PaymentGateway:
    """Stands in for the reader's payment provider."""

    def charge(self, order_id: str) -> SimpleNamespace:
        return SimpleNamespace(status="CAPTURED")


payment_gateway = _PaymentGateway()

registry = Registry()


@registry.register("reserve-stock")
def reserve_stock(ctx: dict) -> dict:  # type: ignore[type-arg]
    return {"reservedQuantity": ctx["variables"]["quantity"], "warehouse": "DUB-1"}


@registry.register("charge-payment")
def charge_payment(ctx: dict) -> dict:  # type: ignore[type-arg]
    result = payment_gateway.charge(ctx["variables"]["orderId"])
    return {"paymentStatus": result.status}  # merged into instance variables


@registry.register("dispatch-order")
def dispatch_order(ctx: dict) -> dict:  # type: ignore[type-arg]
    return {
        "trackingNumber": f"TRK-{ctx['variables']['orderId']}",
        "parcels": [{"weightGrams": 1200}, {"weightGrams": 800}],
    }


if __name__ == "__main__":
    engine_url = sys.argv[1]
    transport: Transport = "grpc" if sys.argv[2] == "grpc" else "rest"
    Worker(registry, engine_url=engine_url, transport=transport).run()  # until SIGINT/SIGTERM
