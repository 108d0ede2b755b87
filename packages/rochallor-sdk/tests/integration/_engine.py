"""The engine under test: ``python -m rochallor_server`` as a subprocess, on its own ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

#: Lease of the engine in the lease tests: short, so that expiry happens within the test.
SHORT_LEASE = "3s"


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EngineProcess:
    """One ``python -m rochallor_server`` process; its output goes to ``log_path``."""

    def __init__(self, dsn: str, log_path: Path, *, lease: str) -> None:
        self.rest_port = free_port()
        self.grpc_port = free_port()
        self.metrics_port = free_port()
        self.log_path = log_path
        inherited = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("WE_", "DB_", "ROCHALLOR_"))
        }
        self.env = {
            **inherited,
            "WE_POSTGRES_DSN": dsn,
            "WE_BIND_HOST": "127.0.0.1",
            "WE_REST_PORT": str(self.rest_port),
            "WE_GRPC_PORT": str(self.grpc_port),
            "WE_METRICS_PORT": str(self.metrics_port),
            "WE_JOB_LEASE": lease,
            "WE_LEASE_SWEEP_INTERVAL": "200ms",
            "WE_TIMER_SWEEP_INTERVAL": "200ms",
            "DB_MIN_CONNS": "1",
            "DB_MAX_CONNS": "10",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def url(self, transport: str) -> str:
        """The worker's ``engine_url`` for ``transport``."""
        return self.grpc_target if transport == "grpc" else self.rest_url

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

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

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait until ``GET /healthz`` answers 200."""
        assert self.proc is None, "engine already started"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rochallor_server"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                self.proc = None
                raise AssertionError(f"engine exited with {code} at start:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.rest_url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                self.proc = None
                raise AssertionError(f"engine not healthy after {timeout}s:\n{self.log()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, wait for the exit and return the exit code (killed after ``timeout``)."""
        proc, self.proc = self.proc, None
        assert proc is not None, "engine not started"
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(
                f"engine still running {timeout}s after SIGTERM:\n{self.log()}"
            ) from None


EngineFactory = Callable[..., EngineProcess]
