"""Fixtures of the Kafka dispatch tests: one real broker per session (KRaft, 127.0.0.1),
started from Maven-fetched jars by :mod:`rochallor_server.testing.kafka_broker`.

A missing ``java`` or ``mvn`` is a setup error of every test here, never a skip.
"""

from __future__ import annotations

import atexit
import itertools
import os
from collections.abc import Iterator

import pytest

from rochallor_server.testing.kafka_broker import KafkaBroker

# Tests configure the engine explicitly; never inherit a developer's engine settings.
for _name in list(os.environ):
    if _name.startswith("WE_") or _name in {"DB_MAX_CONNS", "DB_MIN_CONNS"}:
        del os.environ[_name]

_names = itertools.count(1)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    broker = KafkaBroker()
    atexit.register(broker.stop)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        atexit.unregister(broker.stop)


@pytest.fixture
def unique() -> str:
    """A name part unique in this session (topics and job types of one test)."""
    return f"t{os.getpid()}x{next(_names)}"
