"""Fixtures: the engine under test (a real server on an embedded PostgreSQL) and a helper that
runs the driver's command line as a subprocess, the way anyone runs the suite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CONFORMANCE = Path(__file__).resolve().parents[2]
WORKERS = CONFORMANCE / "workers"

#: Short leases and sweeps so that lease and timer scenarios take seconds, not minutes.
FAST_ENGINE = {
    "WE_JOB_LEASE": "2s",
    "WE_LEASE_SWEEP_INTERVAL": "0.5s",
    "WE_TIMER_SWEEP_INTERVAL": "0.5s",
}


@pytest.fixture(scope="session")
def engine(pg_cluster: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from rochallor_server.testing import EngineProcess, TestCluster

    assert isinstance(pg_cluster, TestCluster)
    dsn = pg_cluster.new_database()
    log = tmp_path_factory.mktemp("engine") / "engine.log"
    process = EngineProcess(dsn, log, env=FAST_ENGINE)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def sdk_worker(*args: str) -> str:
    return " ".join([sys.executable, str(WORKERS / "sdk_worker.py"), *args])


def node_worker() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is required for the second-language worker (node on PATH)")
    return f"{node} {WORKERS / 'node' / 'worker.mjs'}"


#: (driver arguments, last line of its output) of every run, shown at the end of the session.
SUMMARIES: list[tuple[str, str]] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SUMMARIES:
        terminalreporter.section("conformance driver runs")
        for args, summary in SUMMARIES:
            terminalreporter.write_line(f"{summary:<24} {args}")


def _label(args: tuple[str, ...]) -> str:
    """``driver over gRPC, worker sdk_worker.py --grpc, only a b``: what a run was."""
    label = "driver over gRPC" if "--grpc" in args else "driver over REST"
    if "--worker" in args:
        words = args[args.index("--worker") + 1].split()
        script = next((Path(w).name for w in words if w.endswith((".py", ".mjs"))), words[0])
        flags = [w for w in words if w.startswith("--")]
        label += ", worker " + " ".join([script, *flags])
    only = [args[i + 1] for i, a in enumerate(args) if a == "--only"]
    if only:
        label += ", only " + " ".join(only)
    return label


def run_driver(*args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    """``python -m rochallor_conformance ARGS``; its output is echoed so the table shows up in
    the session log."""
    result = subprocess.run(
        [sys.executable, "-m", "rochallor_conformance", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    sys.stdout.write(result.stdout)
    sys.stdout.write(result.stderr)
    SUMMARIES.append((_label(args), last_line(result)))
    return result


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return lines[-1] if lines else ""
