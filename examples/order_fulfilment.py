"""Handlers for the order-fulfilment example (``examples/order-fulfilment.json``).

Run them with the ``rochallor`` command (from the repository root):

    rochallor worker examples.order_fulfilment:registry

or from Python: ``Worker(registry).run()``.
"""

from __future__ import annotations

from typing import Any

from rochallor_sdk import Registry

registry = Registry()


@registry.register("reserve-stock")
def reserve_stock(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"reservedQuantity": ctx["variables"]["quantity"], "warehouse": "DUB-1"}


@registry.register("charge-payment")
def charge_payment(ctx: dict[str, Any]) -> dict[str, Any]:
    # A real handler calls the payment provider here.
    return {"paymentStatus": "CAPTURED"}  # merged into the instance variables


@registry.register("dispatch-order")
def dispatch_order(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"trackingNumber": f"TRK-{ctx['variables']['orderId']}"}
