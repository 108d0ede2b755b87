"""ISO-8601 durations as accepted by boundary timers (workflow-format.md section 3)."""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

import attrs

from rochallor_validator._errors import DurationError
from rochallor_validator._limits import MAX_DURATION_DAYS

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

    @property
    def longest(self) -> timedelta | None:
        """The longest this duration can last from any start.

        Every 12 months (a year) count as 366 days and each remaining month as 31 days, their
        longest lengths. None when that is beyond what a :class:`~datetime.timedelta` holds.
        """
        years, months = divmod(12 * self.years + self.months, 12)
        try:
            return timedelta(days=366 * years + 31 * months) + self.fixed
        except OverflowError:
            return None

    @property
    def within_limit(self) -> bool:
        """True when the timer comes due at most ``MAX_DURATION_DAYS`` after it is scheduled."""
        longest = self.longest
        return longest is not None and longest <= timedelta(days=MAX_DURATION_DAYS)

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


def _component(digits: str | None, cap: int) -> int:
    """A component's value, at most ``cap``.

    Each cap is far beyond ``MAX_DURATION_DAYS``, so a capped duration is still refused by the
    limit, and the caps together keep the fixed part inside what a ``timedelta`` holds (and
    ``int()`` away from numbers of thousands of digits).
    """
    significant = (digits or "0").lstrip("0") or "0"
    return cap if len(significant) > 16 else min(int(significant), cap)


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
        _component(parts[k], cap)
        for k, cap in (
            ("years", 10**15),
            ("months", 10**15),
            ("weeks", 10**7),
            ("days", 10**8),
            ("hours", 10**9),
            ("minutes", 10**10),
        )
    )
    seconds = min(Decimal(parts["seconds"] or 0), Decimal(10**12))
    whole = int(seconds)
    micros = int((seconds - whole) * 1_000_000)
    try:
        fixed = timedelta(
            days=7 * weeks + days, hours=hours, minutes=minutes, seconds=whole, microseconds=micros
        )
    except OverflowError:
        raise DurationError(text) from None
    return IsoDuration(text=text, years=years, months=months, fixed=fixed)
