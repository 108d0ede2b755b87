"""Shared plumbing of the benchmark suite: settings, output, PostgreSQL, the engine process.

Figures go to stdout as ``name=value`` lines (nothing else is written there); progress and
diagnostics go to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import attrs

from rochallor_server import testing
from rochallor_server.store.postgres.migrate import migrate_dsn
from rochallor_server.store.postgres.pool import INDEX_PLANS, init_connection
from rochallor_server.testing import TestCluster

ALL_SCENARIOS = (
    "raw",
    "finished",
    "ref",
    "single",
    "batch",
    "replicas",
    "grpc",
    "five",
    "latency",
    "backlog",
    "idle",
    "kafka",
)


def _env_float(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    return float(text) if text else default


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    return int(text) if text else default


@attrs.frozen(kw_only=True)
class BenchSettings:
    """Every knob of the suite; each one is read from the ``BENCH_*`` variable of its name."""

    scenarios: tuple[str, ...] = ALL_SCENARIOS
    # "on": a durable cluster with PostgreSQL's default settings (fsync, synchronous_commit,
    # full_page_writes on); "off": the test cluster's settings (all three off), for the
    # figures of the earlier rounds
    fsync: str = "on"
    warmup_s: float = 3.0
    # 1. raw SQL ceiling
    raw_s: float = 10.0
    raw_concurrency: int = 4
    raw_backlog: int = 1000
    # 5b. claiming with finished jobs in the table
    claim_s: float = 8.0
    finished_jobs: int = 1_000_000
    # 2./3. end-to-end throughput
    e2e_s: float = 20.0
    workers: int = 2
    parallelism: int = 32
    start_concurrency: int = 8
    max_outstanding: int = 256
    # reference call pattern: plain REST workers, one completion request per job, no long
    # poll; instances started one per request, then drained (and the same with SDK workers)
    ref_instances: int = 3000
    ref_workers: int = 8
    ref_max_jobs: int = 10
    ref_starters: int = 8
    ref_runs: int = 2
    # batch start: instances per ``POST /v1/instances/batch`` request
    batch_size: int = 100
    batch_instances: int = 20_000
    # 4. pickup latency
    latency_s: float = 15.0
    latency_rate: float = 200.0
    poll_interval: float = 0.5
    long_poll_wait: float = 20.0
    # 5a. backlog burn-down
    backlog_jobs: int = 50_000
    backlog_max_s: float = 150.0
    # 6. idle long polls
    idle_waiters: int = 1000
    idle_settle_s: float = 15.0  # PostgreSQL flushes an idle backend's statistics after 10 s
    idle_s: float = 20.0
    # optional py-spy profile of the engine during scenario 2 (a file name; empty = off)
    profile: str = ""

    @classmethod
    def from_env(cls) -> BenchSettings:
        scenarios_text = os.environ.get("BENCH_SCENARIOS", "").strip()
        scenarios = (
            tuple(s.strip() for s in scenarios_text.split(",") if s.strip())
            if scenarios_text
            else ALL_SCENARIOS
        )
        unknown = set(scenarios) - set(ALL_SCENARIOS)
        if unknown:
            raise SystemExit(f"BENCH_SCENARIOS: unknown {sorted(unknown)}; use {ALL_SCENARIOS}")
        values: dict[str, Any] = {"scenarios": scenarios}
        for field in attrs.fields(cls):
            if field.name == "scenarios":
                continue
            name = f"BENCH_{field.name.upper()}"
            if isinstance(field.default, bool | str):
                values[field.name] = os.environ.get(name, field.default)
            elif isinstance(field.default, int):
                values[field.name] = _env_int(name, field.default)
            else:
                values[field.name] = _env_float(name, field.default)
        return cls(**values)


# -- output --------------------------------------------------------------------------------


def figure(name: str, value: object) -> None:
    """One ``name=value`` line on stdout, flushed at once."""
    if isinstance(value, float):
        value = f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    sys.stdout.write(f"{name}={value}\n")
    sys.stdout.flush()


def ratio(name: str, value: float, base: float | None) -> None:
    figure(name, f"{value / base:.4f}" if base else "n/a")


def note(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of ``values`` (not empty)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


# -- PostgreSQL ----------------------------------------------------------------------------


class Database:
    """The throwaway cluster and its per-scenario databases (all migrated).

    ``durable``: PostgreSQL's default durability settings (``fsync``, ``synchronous_commit``
    and ``full_page_writes`` on) instead of the test cluster's (all three off)."""

    def __init__(self, *, durable: bool = True) -> None:
        self.cluster = TestCluster()
        self.cluster.server.ephemeral = not durable
        self.durable = durable
        self._counter = 0

    def start(self) -> None:
        self.cluster.start()

    def stop(self) -> None:
        self.cluster.stop()

    async def new_database(self, prefix: str) -> str:
        self._counter += 1
        name = f"{prefix}_{self._counter}"
        await asyncio.to_thread(self.cluster.psql, f"CREATE DATABASE {name}")
        dsn = self.cluster.dsn_for(name)
        await migrate_dsn(dsn)
        return dsn


async def connect(dsn: str) -> asyncpg.Connection[Any]:
    """A connection speaking JSON and planning like the engine's pool connections."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(dsn, server_settings=INDEX_PLANS)
    await init_connection(conn)
    return conn


# -- the engine process --------------------------------------------------------------------


class EngineProcess(testing.EngineProcess):
    """The engine subprocess of the benchmarks, async-friendly; it inherits the environment,
    so ``DB_MAX_CONNS``, ``WE_JOB_LEASE``, ``WE_AUDIT_LOG_ENABLED`` … apply."""

    def __init__(self, dsn: str, *, processes: int = 1) -> None:
        log_path = Path(tempfile.mkdtemp(prefix="rochallor-bench-")) / "engine.log"
        level = os.environ.get("WE_LOG_LEVEL", "WARN")
        env = {"WE_LOG_LEVEL": level, "WE_PROCESSES": str(processes)}
        super().__init__(dsn, log_path, inherit=True, env=env)
        self.processes = processes

    async def start_async(self, within: float = 60.0) -> None:
        """Spawn the engine and wait until ``/healthz`` answers."""
        await asyncio.to_thread(self.start, within)
        # /healthz answered as soon as one process was ready: wait for the others too (each
        # serves metrics on its own port).
        deadline = time.monotonic() + within
        for index in range(1, self.processes):
            url = f"http://127.0.0.1:{self.metrics_port + index}/metrics"
            while not await asyncio.to_thread(_answers, url):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"engine process {index} not ready:\n{self.log()}")
                await asyncio.sleep(0.1)
        note(f"engine pid {self.pid} ready on {self.rest_url} (log {self.log_path})")

    async def stop_async(self) -> None:
        if self.running:
            await asyncio.to_thread(self.stop, 20)

    def rss_mb(self) -> tuple[float, float]:
        """(current VmRSS, peak VmHWM) of the engine process, in MiB."""
        fields: dict[str, float] = {}
        status = Path(f"/proc/{self.pid}/status").read_text(encoding="ascii")
        for line in status.splitlines():
            key, _, rest = line.partition(":")
            if key in {"VmRSS", "VmHWM"}:
                fields[key] = int(rest.split()[0]) / 1024
        return fields["VmRSS"], fields["VmHWM"]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return int(response.status) == 200
    except OSError:
        return False


# -- profiling -----------------------------------------------------------------------------


class Profiler:
    """``py-spy record`` of a process for a while, summarised from its collapsed stacks."""

    def __init__(self, pid: int, output: str, duration: float) -> None:
        self.pid = pid
        self.output = Path(output).resolve()
        self.duration = duration
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.output.parent.mkdir(parents=True, exist_ok=True)
        # The venv's own py-spy when it is not on PATH (the venv not activated).
        beside = Path(sys.executable).parent / "py-spy"
        command = [
            shutil.which("py-spy") or str(beside),
            "record",
            "--pid",
            str(self.pid),
            "--duration",
            str(max(int(self.duration), 1)),
            "--rate",
            "67",
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(self.output),
        ]
        try:
            self.process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        except OSError as exc:
            note(f"profile: py-spy not available ({exc}); skipped")

    async def finish(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(self.process.wait, self.duration + 30)
        if not self.output.exists():
            note("profile: py-spy wrote nothing (ptrace not permitted?)")
            return
        for line in summarise_collapsed(self.output.read_text(encoding="utf-8")):
            note(f"profile: {line}")


def summarise_collapsed(text: str, top: int = 15) -> list[str]:
    """Top functions by inclusive and by own samples, from py-spy's ``--format raw``."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [f.strip() for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    if total == 0:
        return ["no samples"]
    lines = [f"{total} samples"]

    def rows(table: dict[str, int], label: str, keep: Callable[[str], bool]) -> None:
        lines.append(f"top {label}:")
        ranked = sorted(((n, f) for f, n in table.items() if keep(f)), reverse=True)
        lines.extend(f"  {100 * n / total:5.1f}%  {f}" for n, f in ranked[:top])

    rows(own, "own time", lambda f: True)
    rows(inclusive, "inclusive (rochallor frames)", lambda f: "rochallor" in f)
    return lines
