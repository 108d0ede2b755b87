"""Time and identifiers, injected into the core so that it stays deterministic in tests."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from ulid import ULID


class Clock(Protocol):
    def now(self) -> dt.datetime: ...


class IdGenerator(Protocol):
    def new_id(self) -> str: ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class UlidGenerator:
    """Monotonic ULIDs: ids made within one millisecond still sort in creation order."""

    def __init__(self) -> None:
        self._last = ULID()

    def new_id(self) -> str:
        candidate = ULID()
        if bytes(candidate) <= bytes(self._last):
            candidate = ULID.from_int(int(self._last) + 1)
        self._last = candidate
        return str(candidate)
