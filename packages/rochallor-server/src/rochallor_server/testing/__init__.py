"""Test helpers shipped with the server: deterministic clock and ids, throwaway PostgreSQL
(tests of the service and the store run on it: there is no in-memory store), and the engine
as a subprocess."""

from __future__ import annotations

import datetime as dt
import itertools

from rochallor_server.testing._credentials import Certificates, JwtIssuer, make_certificates
from rochallor_server.testing._postgres import TestCluster
from rochallor_server.testing._process import EngineProcess, EngineProcessError

__all__ = [
    "Certificates",
    "EngineProcess",
    "EngineProcessError",
    "FixedClock",
    "JwtIssuer",
    "SequentialIds",
    "TestCluster",
    "make_certificates",
]


class FixedClock:
    """A clock that only moves when told to."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.current = start or dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)

    def now(self) -> dt.datetime:
        return self.current

    def advance(self, seconds: float) -> dt.datetime:
        self.current += dt.timedelta(seconds=seconds)
        return self.current


class SequentialIds:
    """Ids that sort in creation order: ``id-000001``, ``id-000002``, …"""

    def __init__(self, prefix: str = "id") -> None:
        self._counter = itertools.count(1)
        self._prefix = prefix

    def new_id(self) -> str:
        return f"{self._prefix}-{next(self._counter):06d}"
