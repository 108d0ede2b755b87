from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rochallor_validator import DurationError, ValidatorError, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT30S", timedelta(seconds=30)),
        ("PT1.5S", timedelta(seconds=1.5)),
        ("PT1H30M", timedelta(hours=1, minutes=30)),
        ("P7D", timedelta(days=7)),
        ("P1W", timedelta(days=7)),
        ("PT0S", timedelta(0)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("P1W2DT3H4M5S", timedelta(days=9, hours=3, minutes=4, seconds=5)),
    ],
)
def test_fixed_durations(text: str, expected: timedelta) -> None:
    duration = parse_duration(text)
    assert duration.is_fixed
    assert duration.to_timedelta() == expected


def test_calendar_months_clamp_day() -> None:
    duration = parse_duration("P1M")
    assert not duration.is_fixed
    start = datetime(2025, 1, 31, 12, tzinfo=UTC)
    assert duration.add_to(start) == datetime(2025, 2, 28, 12, tzinfo=UTC)
    assert duration.to_timedelta(start) == timedelta(days=28)
    assert parse_duration("P1Y2M").add_to(start) == datetime(2026, 3, 31, 12, tzinfo=UTC)
    with pytest.raises(DurationError):
        duration.to_timedelta()


@pytest.mark.parametrize(
    "text",
    ["P", "PT", "P1DT", "pt30s", "PT-1S", "P1.5D", "PT1.S", "30S", "P1S", "PT1H2H", "P1D1W", ""],
)
def test_invalid_durations(text: str) -> None:
    with pytest.raises(ValidatorError):
        parse_duration(text)
