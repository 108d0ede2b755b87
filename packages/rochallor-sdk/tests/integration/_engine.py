"""The engine under test: ``python -m rochallor_server`` as a subprocess, on its own ports."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from rochallor_server.testing import EngineProcess as _EngineProcess

#: Lease of the engine in the lease tests: short, so that expiry happens within the test.
SHORT_LEASE = "3s"


class EngineProcess(_EngineProcess):
    """The server's test engine process, with fast sweepers and a chosen lease."""

    def __init__(self, dsn: str, log_path: Path, *, lease: str) -> None:
        super().__init__(
            dsn,
            log_path,
            env={
                "WE_JOB_LEASE": lease,
                "WE_LEASE_SWEEP_INTERVAL": "200ms",
                "WE_TIMER_SWEEP_INTERVAL": "200ms",
                "DB_MIN_CONNS": "1",
                "DB_MAX_CONNS": "10",
            },
        )

    def url(self, transport: str) -> str:
        """The worker's ``engine_url`` for ``transport``."""
        return self.grpc_target if transport == "grpc" else self.rest_url

    def metric(self, name: str, **labels: str) -> float:
        """A sample of the engine's Prometheus metrics (0 when absent). Blocking."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return 0.0


EngineFactory = Callable[..., EngineProcess]
