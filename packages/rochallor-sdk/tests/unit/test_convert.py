from __future__ import annotations

import datetime

import pytest

from rochallor_sdk import Job
from rochallor_sdk.client import _convert
from rochallor_sdk.client._grpc import parse_target


def test_integral_floats_become_ints_recursively() -> None:
    value = {"a": 1.0, "b": 1.5, "c": [2.0, {"d": 3.0}], "e": True, "f": None, "g": 1e300}
    assert _convert.integral_floats_to_int(value) == {
        "a": 1,
        "b": 1.5,
        "c": [2, {"d": 3}],
        "e": True,
        "f": None,
        "g": 1e300,  # beyond 2**53: not exact, left a float
    }
    assert type(_convert.integral_floats_to_int(value)["a"]) is int


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-01T12:34:56Z", datetime.datetime(2025, 3, 1, 12, 34, 56, tzinfo=datetime.UTC)),
        (
            "2025-03-01T14:34:56.5+02:00",
            datetime.datetime(2025, 3, 1, 12, 34, 56, 500000, tzinfo=datetime.UTC),
        ),
        ("2025-03-01T12:34:56", datetime.datetime(2025, 3, 1, 12, 34, 56, tzinfo=datetime.UTC)),
        (None, None),
    ],
)
def test_timestamps_are_utc_aware(text: str | None, expected: datetime.datetime | None) -> None:
    assert _convert.parse_timestamp(text) == expected


def test_job_rejects_naive_lease_end() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        naive = datetime.datetime(2025, 1, 1)  # noqa: DTZ001 - the point of the test
        Job(id="j", job_type="t", instance_id="i", lock_expires_at=naive)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("engine:9091", ("engine", 9091)),
        ("grpc://engine:9092", ("engine", 9092)),
        ("http://engine", ("engine", 9090)),
        ("localhost", ("localhost", 9090)),
    ],
)
def test_grpc_targets(target: str, expected: tuple[str, int]) -> None:
    assert parse_target(target) == expected
