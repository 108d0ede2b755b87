"""The engine as a subprocess (``python -m rochallor_server``) on free loopback ports.

For tests and benchmarks that need a real engine process: SDK integration tests, the
benchmark suite, start-up and shutdown tests.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from rochallor_server.store.postgres.embedded import free_port


class EngineProcessError(AssertionError):
    """The engine process did not start, or did not stop, as expected."""


class EngineProcess:
    """One engine process. ``start()`` waits for ``/healthz``; ``stop()`` sends SIGTERM.

    By default the engine's own settings (``WE_*``, ``DB_*``) are not inherited from this
    process's environment; ``inherit=True`` keeps them (benchmarks vary them per run).
    ``env`` overrides anything.
    """

    def __init__(
        self,
        dsn: str,
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        inherit: bool = False,
        tls_ca: Path | None = None,
    ) -> None:
        """``tls_ca``: the engine serves TLS (``WE_TLS_*`` in ``env``) with a certificate
        signed by this CA; URLs become ``https://`` and the health check trusts the CA."""
        self.rest_port = free_port()
        self.grpc_port = free_port()
        self.metrics_port = free_port()
        self.log_path = log_path
        base = {
            name: value
            for name, value in os.environ.items()
            if inherit or not name.startswith(("WE_", "DB_", "ROCHALLOR_"))
        }
        self.env = {
            **base,
            "WE_POSTGRES_DSN": dsn,
            "WE_BIND_HOST": "127.0.0.1",
            "WE_REST_PORT": str(self.rest_port),
            "WE_GRPC_PORT": str(self.grpc_port),
            "WE_METRICS_PORT": str(self.metrics_port),
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self._ssl = None if tls_ca is None else ssl.create_default_context(cafile=str(tls_ca))

    @property
    def rest_url(self) -> str:
        scheme = "http" if self._ssl is None else "https"
        return f"{scheme}://127.0.0.1:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise EngineProcessError("engine not started")
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"{self.rest_url}/healthz", timeout=1, context=self._ssl
            ) as response:
                return int(response.status) == 200
        except urllib.error.HTTPError as exc:
            exc.close()  # it holds the answer's socket
            return False
        except OSError:
            return False

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait until ``GET /healthz`` answers 200 (blocking)."""
        if self.proc is not None:
            raise EngineProcessError("engine already started")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rochallor_server"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not self.healthy():
            code = self.proc.poll()
            if code is not None:
                self.proc = None
                raise EngineProcessError(f"engine exited with {code} at start:\n{self.log()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                self.proc = None
                raise EngineProcessError(f"engine not healthy after {timeout}s:\n{self.log()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, wait for the exit and return its code (killed after ``timeout``)."""
        proc, self.proc = self.proc, None
        if proc is None:
            raise EngineProcessError("engine not started")
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise EngineProcessError(
                f"engine still running {timeout}s after SIGTERM:\n{self.log()}"
            ) from None
