from __future__ import annotations

from typing import Any

from rochallor_sdk import Registry, Worker, WorkerSettings
from rochallor_sdk.testing import InMemoryJobClient


def settings(**overrides: Any) -> WorkerSettings:
    values: dict[str, Any] = {
        "worker_id": "test-worker",
        "parallelism": 4,
        "poll_interval": 0.01,
        "long_poll_wait": 1.0,
        "request_timeout": 1.0,
        "shutdown_timeout": 2.0,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
    }
    values.update(overrides)
    return WorkerSettings(**values)


def make_worker(registry: Registry, client: InMemoryJobClient, **overrides: Any) -> Worker:
    return Worker(registry, settings=settings(**overrides), client=client, handle_signals=False)
