"""Encode + decode cost of a ``Job`` with a 20-key variable map (``name=value`` lines, µs).

Compares betterproto2's own Struct conversion (``Struct.from_dict`` / ``Struct.to_dict``)
with the hand-written one of ``rochallor_server.api.grpc.convert`` (the server's choice).

    python packages/rochallor-server/bench/bench_grpc_convert.py
"""

from __future__ import annotations

import datetime as dt
import timeit
from collections.abc import Callable
from typing import Any

from rochallor_server._gen.google.protobuf import Struct
from rochallor_server._gen.workflow import v1 as pb
from rochallor_server.api.grpc import convert

VARIABLES: dict[str, Any] = {
    "orderId": "o-123456",
    "customerId": 98765,
    "amount": 1249.5,
    "currency": "EUR",
    "quantity": 3,
    "express": True,
    "giftWrap": False,
    "coupon": None,
    "paymentStatus": "CAPTURED",
    "attempt": 1,
    "address": {"street": "Main Street 1", "zip": "1010", "city": "Vienna"},
    "items": [{"sku": "A-1", "qty": 1}, {"sku": "B-2", "qty": 2}],
    "tags": ["priority", "vip"],
    "score": 0.87,
    "createdBy": "checkout-service",
    "locale": "de-AT",
    "retries": 0,
    "notes": "leave at the door",
    "warehouse": "VIE-2",
    "weightKg": 4.25,
}
LOCK = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)


def job(variables: Struct) -> pb.Job:
    return pb.Job(
        id="01JC0000000000000000000000",
        job_type="charge-payment",
        instance_id="01JB0000000000000000000000",
        step_id="charge-payment",
        step_execution_id="01JD0000000000000000000000",
        retries_remaining=3,
        variables=variables,
        lock_expires_at=LOCK,
    )


def roundtrip_default() -> dict[str, Any]:
    data = bytes(job(Struct.from_dict(VARIABLES)))
    decoded = pb.Job.parse(data).variables
    assert decoded is not None
    result: dict[str, Any] = decoded.to_dict()
    return result


def roundtrip_hand() -> dict[str, Any]:
    data = bytes(job(convert.struct_from_json(VARIABLES)))
    decoded = pb.Job.parse(data).variables
    assert decoded is not None
    return convert.struct_to_json(decoded)


def micros(fn: Callable[[], object], number: int = 300) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    hand_struct = convert.struct_from_json(VARIABLES)
    default_struct = Struct.from_dict(VARIABLES)
    wire = bytes(job(hand_struct))
    parsed = pb.Job.parse(wire).variables
    assert parsed is not None
    assert convert.struct_to_json(parsed) == VARIABLES
    lines = {
        "wire_bytes": len(wire),
        "struct_build_default_us": micros(lambda: Struct.from_dict(VARIABLES), 2000),
        "struct_build_hand_us": micros(lambda: convert.struct_from_json(VARIABLES), 2000),
        "struct_to_dict_default_us": micros(default_struct.to_dict, 2000),
        "struct_to_dict_hand_us": micros(lambda: convert.struct_to_json(parsed), 2000),
        "job_encode_us": micros(lambda: bytes(job(hand_struct))),
        "job_decode_us": micros(lambda: pb.Job.parse(wire)),
        "job_encode_decode_default_us": micros(roundtrip_default),
        "job_encode_decode_hand_us": micros(roundtrip_hand),
    }
    for name, value in lines.items():
        print(f"{name}={value:.1f}" if isinstance(value, float) else f"{name}={value}")  # noqa: T201


if __name__ == "__main__":
    main()
