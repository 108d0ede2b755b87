"""pytest fixtures for tests that need a real PostgreSQL (opt-in).

Load it with ``pytest -p rochallor_server.testing.pytest_plugin`` or in the ``addopts`` of a
project's pytest configuration; installing the server registers nothing by itself.

- ``pg_cluster`` (session): an embedded cluster with a migrated template database.
- ``pg_dsn`` (function): the DSN of a fresh database cloned from the template.

Clusters are stopped when the session ends, also on SIGTERM (turned into a normal interrupt);
clusters left behind by killed runs are reaped when the next session starts.
"""

from __future__ import annotations

import atexit
import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from rochallor_server.testing._postgres import TestCluster


def _migrate(dsn: str) -> None:
    # Imported lazily so that the plugin loads even where the store is not importable.
    from rochallor_server.store.postgres import migrate

    migrate.migrate_sync(dsn)


def pytest_configure(config: pytest.Config) -> None:
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, interrupt)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[TestCluster]:
    cluster = TestCluster()
    atexit.register(cluster.stop)
    cluster.start()
    try:
        cluster.prepare_template(_migrate)
        yield cluster
    finally:
        cluster.stop()
        atexit.unregister(cluster.stop)


@pytest.fixture
def pg_dsn(pg_cluster: TestCluster) -> Iterator[str]:
    dsn = pg_cluster.new_database()
    try:
        yield dsn
    finally:
        pg_cluster.drop_database(dsn)
