"""The ``rochallor-server`` command as a newcomer runs it: embedded database, real ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from rochallor_server.store.postgres.embedded import free_port


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status, response.read()


def test_server_starts_on_embedded_postgres_and_stops_cleanly(tmp_path: Path) -> None:
    rest, grpc, metrics = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "WE_DATA_DIR": str(tmp_path / "pgdata"),
        "WE_REST_PORT": str(rest),
        "WE_GRPC_PORT": str(grpc),
        "WE_METRICS_PORT": str(metrics),
        "WE_BIND_HOST": "127.0.0.1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "rochallor_server"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and status is None and proc.poll() is None:
            try:
                status, _ = _get(f"http://127.0.0.1:{rest}/healthz")
            except OSError:
                time.sleep(0.1)
        if status is None:
            proc.terminate()
            raise AssertionError(f"no /healthz answer; server said:\n{proc.communicate()[1]}")
        assert status == 200
        code, body = _get(f"http://127.0.0.1:{metrics}/metrics")
        assert code == 200
        assert b"http_requests_duration_seconds" in body
        assert (tmp_path / "pgdata" / "PG_VERSION").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "embedded PostgreSQL" in stderr
    assert f"REST 127.0.0.1:{rest}" in stderr
    assert not (tmp_path / "pgdata" / "postmaster.pid").exists()


def _run_to_exit(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the server command expecting it to exit on its own (a start-up error)."""
    return subprocess.run(
        [sys.executable, "-m", "rochallor_server"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_taken_port_is_reported_with_its_variable(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            **os.environ,
            "WE_DATA_DIR": str(tmp_path / "pgdata"),
            "WE_REST_PORT": str(port),
            "WE_GRPC_PORT": str(free_port()),
            "WE_METRICS_PORT": str(free_port()),
            "WE_BIND_HOST": "127.0.0.1",
        }
        result = _run_to_exit(env)
    assert result.returncode == 2
    assert f"WE_REST_PORT: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "pgdata" / "postmaster.pid").exists()  # embedded database stopped


def test_invalid_configuration_is_reported_before_anything_starts() -> None:
    env = {**os.environ, "WE_REST_PORT": "eighty"}
    result = _run_to_exit(env)
    assert result.returncode == 2
    assert "invalid configuration: WE_REST_PORT: not an integer: 'eighty'" in result.stderr
