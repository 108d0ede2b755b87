"""Fixtures for the integration tests: a real engine process on a fresh PostgreSQL database.

The engine is ``python -m rochallor_server`` started as a subprocess (as an operator runs it)
against the ``pg_dsn`` database of the rochallor-server pytest plugin. It is stopped with
SIGTERM at teardown, and the test fails if it does not exit cleanly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ._engine import SHORT_LEASE, EngineFactory, EngineProcess


@pytest.fixture
def engine_factory(pg_dsn: str, tmp_path: Path) -> Iterator[EngineFactory]:
    """``make(lease="30s", start=True)`` → an engine on this test's database.

    Every engine still running at teardown is stopped with SIGTERM and must exit with 0.
    """
    engines: list[EngineProcess] = []

    def make(*, lease: str = "30s", start: bool = True) -> EngineProcess:
        engine = EngineProcess(pg_dsn, tmp_path / f"engine-{len(engines)}.log", lease=lease)
        engines.append(engine)
        if start:
            engine.start()
        return engine

    yield make
    failures = []
    for engine in engines:
        if engine.proc is None:
            continue
        code = engine.stop()
        if code != 0:
            failures.append(f"engine exited with {code} after SIGTERM:\n{engine.log()}")
    assert not failures, "\n\n".join(failures)


@pytest.fixture
def engine(engine_factory: EngineFactory) -> EngineProcess:
    """An engine with the default 30 s job lease."""
    return engine_factory()


@pytest.fixture
def short_lease_engine(engine_factory: EngineFactory) -> EngineProcess:
    """An engine whose job leases last 3 s."""
    return engine_factory(lease=SHORT_LEASE)
