"""ISO-8601 durations as accepted by boundary timers (workflow-format.md section 3)."""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

import attrs

from rochallor_validator._errors import DurationError

_DURATION_RE: Final = re.compile(
    r"P(?:(?P<years>[0-9]+)Y)?(?:(?P<months>[0-9]+)M)?(?:(?P<weeks>[0-9]+)W)?(?:(?P<days>[0-9]+)D)?"
    r"(?:T(?:(?P<hours>[0-9]+)H)?(?:(?P<minutes>[0-9]+)M)?(?:(?P<seconds>[0-9]+(?:\.[0-9]+)?)S)?)?",
    re.ASCII,
)


@attrs.frozen(kw_only=True)
class IsoDuration:
    """A parsed duration: calendar part (years, months) plus a fixed part (everything else).

    Years and months have no fixed length, so the fixed :class:`~datetime.timedelta` is exact
    only when :attr:`is_fixed`; use :meth:`add_to` to compute a firing time.
    """

    text: str
    years: int = 0
    months: int = 0
    fixed: timedelta = timedelta(0)

    @property
    def is_fixed(self) -> bool:
        """True when there is no calendar (year/month) component."""
        return self.years == 0 and self.months == 0

    def add_to(self, start: datetime) -> datetime:
        """``start`` plus this duration; years/months are calendar units, day clamped."""
        total_months = start.month - 1 + self.months + 12 * self.years
        year = start.year + total_months // 12
        month = total_months % 12 + 1
        try:
            day = min(start.day, calendar.monthrange(year, month)[1])
            return start.replace(year=year, month=month, day=day) + self.fixed
        except (ValueError, OverflowError):
            raise DurationError(self.text) from None

    def to_timedelta(self, start: datetime | None = None) -> timedelta:
        """Length of the duration; ``start`` is required when there is a calendar part."""
        if self.is_fixed:
            return self.fixed
        if start is None:
            raise DurationError(self.text)
        return self.add_to(start) - start


def parse_duration(text: str) -> IsoDuration:
    """Parse an ISO-8601 duration such as ``PT30S``, ``P7D``, ``P1W``, ``P1M``, ``PT1.5S``.

    Raises :class:`DurationError` (a :class:`ValidatorError`) for anything outside the form of
    workflow-format.md section 3.
    """
    if not isinstance(text, str):
        raise DurationError(repr(text))
    m = _DURATION_RE.fullmatch(text)
    if m is None:
        raise DurationError(text)
    parts = m.groupdict()
    if all(v is None for v in parts.values()):
        raise DurationError(text)  # "P", "PT"
    if text.endswith("T"):
        raise DurationError(text)  # "P1DT": a T needs a time component
    years, months, weeks, days, hours, minutes = (
        int(parts[k] or 0) for k in ("years", "months", "weeks", "days", "hours", "minutes")
    )
    seconds = Decimal(parts["seconds"] or 0)
    whole = int(seconds)
    micros = int((seconds - whole) * 1_000_000)
    try:
        fixed = timedelta(
            days=7 * weeks + days, hours=hours, minutes=minutes, seconds=whole, microseconds=micros
        )
    except OverflowError:
        raise DurationError(text) from None
    return IsoDuration(text=text, years=years, months=months, fixed=fixed)
