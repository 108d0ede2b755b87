"""The fault suite's machinery: real processes (PostgreSQL, engines, SDK workers), faults
injected with signals, and the figures and invariants read from the database afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg
import attrs

from rochallor_server.store.postgres.embedded import PASSWORD_FILE, EmbeddedPostgres
from rochallor_server.testing import EngineProcess

HERE = Path(__file__).resolve().parent
WORKER = HERE / "worker.py"
INVARIANTS = HERE / "invariants.sql"

# Short leases and fast sweepers, so that a fault's consequences (redelivery, timers, chained
# starts) show within seconds.
ENGINE_ENV = {
    "WE_JOB_LEASE": "3s",
    "WE_LEASE_SWEEP_INTERVAL": "500ms",
    "WE_TIMER_SWEEP_INTERVAL": "500ms",
    "WE_LOG_LEVEL": "WARNING",
    "DB_MIN_CONNS": "2",
    "DB_MAX_CONNS": "12",
}


@attrs.frozen(kw_only=True)
class Scale:
    """How big a run is: ``FAULTS_SCALE=full`` (``nox -s faults``) or ``quick`` (default)."""

    instances: int
    workers: int
    parallelism: int
    kills: int
    pg_down_s: float
    settle_s: float
    timer_s: int
    restart_lease: str
    """The lease in ``postgres_restart``: longer than the outage."""

    @classmethod
    def from_env(cls) -> Scale:
        if os.environ.get("FAULTS_SCALE", "quick") == "full":
            return cls(
                instances=2000,
                workers=4,
                parallelism=16,
                kills=6,
                pg_down_s=8.0,
                settle_s=180,
                timer_s=30,
                restart_lease="30s",
            )
        return cls(
            instances=100,
            workers=2,
            parallelism=8,
            kills=2,
            pg_down_s=5.0,
            settle_s=90,
            timer_s=4,
            restart_lease="10s",
        )


# -- workflow definitions ----------------------------------------------------------------------


def _task(step_id: str, job_type: str, nxt: str) -> dict[str, Any]:
    return {
        "id": step_id,
        "name": step_id,
        "type": "SERVICE_TASK",
        "jobType": job_type,
        "retryCount": 2,
        "nextStep": nxt,
    }


def _end(step_id: str = "end") -> dict[str, Any]:
    return {"id": step_id, "name": step_id, "type": "END"}


# Fan-out to two service tasks, a join, a third service task.
FLOW = {
    "id": "fault-flow",
    "name": "fault-flow",
    "steps": [
        {
            "id": "split",
            "name": "split",
            "type": "PARALLEL_GATEWAY",
            "parallelNextSteps": ["a", "b"],
            "joinStep": "join",
        },
        _task("a", "fault-a", "join"),
        _task("b", "fault-b", "join"),
        {"id": "join", "name": "join", "type": "JOIN_GATEWAY", "nextStep": "c"},
        _task("c", "fault-c", "end"),
        _end(),
    ],
}
FLOW_TYPES = "fault-a,fault-b,fault-c"


def timer_flow(seconds: int) -> dict[str, Any]:
    """A wait that only its interrupting timer ends."""
    timer = {
        "type": "TIMER",
        "duration": f"PT{seconds}S",
        "interrupting": True,
        "targetStepId": "fired",
    }
    return {
        "id": "fault-timer",
        "name": "fault-timer",
        "steps": [
            {"id": "w", "name": "w", "type": "WAIT", "nextStep": "end", "boundaryEvents": [timer]},
            _task("fired", "fault-t", "end"),
            _end(),
        ],
    }


CHILD = {
    "id": "fault-child",
    "name": "fault-child",
    "steps": [_task("q", "fault-q", "end"), _end()],
}
PARENT = {
    "id": "fault-parent",
    "name": "fault-parent",
    "autoStartNextWorkflow": True,
    "nextWorkflowId": "fault-child",
    "steps": [_task("p", "fault-p", "end"), _end()],
}
CHAIN_TYPES = "fault-p,fault-q"


# -- processes ---------------------------------------------------------------------------------


def log(message: str) -> None:
    sys.stderr.write(f"[faults {time.strftime('%H:%M:%S')}] {message}\n")


class Engine:
    """One engine process on fixed ports: killed and started again, it answers where it did."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        *,
        dsn: str | None,
        data_dir: Path | None,
        **settings: str,
    ) -> None:
        env = {**ENGINE_ENV, **settings}
        if data_dir is not None:
            env["WE_DATA_DIR"] = str(data_dir)
        self.process = EngineProcess(dsn or "", workdir / f"{name}.log", env=env)
        self._ports()
        if dsn is None:
            self.process.env.pop("WE_POSTGRES_DSN")  # the engine's own embedded PostgreSQL
        self.name = name

    @property
    def url(self) -> str:
        return self.process.rest_url

    def _ports(self, *, rest: bool = True) -> None:
        """Ports below the ephemeral range: while the engine is down, no outgoing connection
        of this machine can take them as its source port (the REST port must survive a
        restart: the workers know it)."""
        p = self.process
        if rest:
            p.rest_port = _listenable_port()
        p.grpc_port, p.metrics_port = _listenable_port(), _listenable_port()
        p.env.update(
            WE_REST_PORT=str(p.rest_port),
            WE_GRPC_PORT=str(p.grpc_port),
            WE_METRICS_PORT=str(p.metrics_port),
        )

    async def start(self) -> None:
        if self.process.proc is None:
            self._ports(rest=False)  # nobody but the suite uses gRPC and metrics here
        await asyncio.to_thread(self.process.start, 90.0)

    def kill(self) -> None:
        """SIGKILL: no shutdown work at all (its embedded postmaster, if any, lives on)."""
        proc = self.process.proc
        if proc is not None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        self.process.proc = None

    async def stop(self) -> None:
        if self.process.proc is not None:
            await asyncio.to_thread(self.process.stop, 30.0)


def _listenable_port() -> int:
    """A free port in 20000-32767 (below Linux's default ephemeral range, 32768-60999)."""
    while True:
        port = random.randint(20000, 32767)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


class Workers:
    """SDK worker processes (``worker.py``), each logging its deliveries to its own file."""

    def __init__(self, workdir: Path, job_types: str, parallelism: int) -> None:
        self.workdir = workdir
        self.job_types = job_types
        self.parallelism = parallelism
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.engine_of: dict[str, str] = {}
        self._count = 0
        self.killed = 0
        self.killed_ids: list[str] = []

    def spawn(self, url: str) -> str:
        self._count += 1
        worker_id = f"w{self._count}"
        self.engine_of[worker_id] = url
        out = (self.workdir / f"{worker_id}.out").open("ab")
        self.procs[worker_id] = subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                url,
                worker_id,
                self.job_types,
                str(self.workdir / f"{worker_id}.deliveries"),
                str(self.parallelism),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        return worker_id

    def busy(self) -> list[str]:
        """Workers handling jobs now (their delivery log was written in the last 0.3 s)."""
        now = time.time()
        found = []
        for worker_id in sorted(self.procs):
            path = self.workdir / f"{worker_id}.deliveries"
            with contextlib.suppress(FileNotFoundError):
                if now - path.stat().st_mtime < 0.3:
                    found.append(worker_id)
        return found

    async def wait_busy(self, url: str | None = None, within: float = 90.0) -> None:
        """Until a worker (of the engine at ``url``) handles jobs: faults hit work in flight."""
        deadline = time.monotonic() + within
        while not [w for w in self.busy() if url is None or self.engine_of[w] == url]:
            if time.monotonic() > deadline:
                raise AssertionError("no worker got busy: the fault would hit nothing")
            await asyncio.sleep(0.05)

    async def kill_busy(self, within: float = 10.0) -> str | None:
        """SIGKILL a worker while it holds jobs (``None`` if none got busy in time)."""
        deadline = time.monotonic() + within
        while not (busy := self.busy()):
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.05)
        return self.kill(random.choice(busy))

    def kill_one(self) -> str:
        return self.kill(random.choice(sorted(self.procs)))

    def kill(self, worker_id: str) -> str:
        proc = self.procs.pop(worker_id)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.killed += 1
        self.killed_ids.append(worker_id)
        return worker_id

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = {}

    def deliveries(self) -> tuple[int, int, int]:
        """(deliveries, redeliveries, jobs held by two workers at once) from the logs.

        A redelivery is a delivery of a (job, attempt) beyond its first; an attempt is known
        by the job's retries remaining (planned retries are not redeliveries)."""
        seen: dict[tuple[str, str], int] = defaultdict(int)
        spans: dict[str, dict[tuple[str, str], list[float]]] = defaultdict(dict)
        total = 0
        for path in self.workdir.glob("*.deliveries"):
            for line in path.read_text(encoding="ascii").splitlines():
                parts = line.split()
                if len(parts) != 5:
                    continue  # a line cut short by SIGKILL
                kind, job_id, remaining, worker, at = parts
                key = (worker, remaining)
                if kind == "S":
                    total += 1
                    seen[(job_id, remaining)] += 1
                    spans[job_id][key] = [float(at), float("nan")]
                elif key in spans[job_id]:
                    spans[job_id][key][1] = float(at)
        redelivered = sum(count - 1 for count in seen.values())
        double_held = 0
        for held in spans.values():
            finished = sorted(span for span in held.values() if span[1] == span[1])
            if any(b[0] < a[1] for a, b in itertools.pairwise(finished)):
                double_held += 1
        return total, redelivered, double_held


class Database:
    """A PostgreSQL server run by the suite (for scenarios whose engines use a DSN)."""

    def __init__(self, workdir: Path) -> None:
        self.server = EmbeddedPostgres(workdir / "pg", ephemeral=True)
        self.port: int | None = None

    async def start(self) -> str:
        dsn = await asyncio.to_thread(self.server.start, self.port)
        self.port = self.server.port
        return dsn

    async def stop(self) -> None:
        """A fast shutdown: sessions are ended, what committed is on disk."""
        await asyncio.to_thread(
            self.server._tool, "pg_ctl", "-D", str(self.server.data_dir), "-m", "fast", "-w", "stop"
        )

    async def remove(self) -> None:
        await asyncio.to_thread(self.server.stop, remove=True)


def embedded_dsn(data_dir: Path) -> str:
    """The DSN of the PostgreSQL an engine runs in ``data_dir`` (port from postmaster.pid,
    the password the engine stored there)."""
    lines = (data_dir / "postmaster.pid").read_text().splitlines()
    password = quote((data_dir / PASSWORD_FILE).read_text().strip(), safe="")
    return f"postgresql://postgres:{password}@127.0.0.1:{int(lines[3])}/postgres"


# -- load ----------------------------------------------------------------------------------------


async def http_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))


async def call(
    session: aiohttp.ClientSession, urls: Sequence[str], method: str, path: str, body: Any
) -> Any:
    """A call that is retried (on another engine, if there are several) until it succeeds."""
    attempt = 0
    while True:
        url = urls[attempt % len(urls)]
        attempt += 1
        try:
            async with session.request(method, url + path, json=body) as response:
                if response.status < 300:
                    return await response.json() if response.content_length != 0 else None
                if response.status < 500:
                    raise AssertionError(
                        f"{method} {path}: {response.status} {await response.text()}"
                    )
        except (TimeoutError, aiohttp.ClientError):
            pass
        await asyncio.sleep(min(0.05 * attempt, 1.0))


async def upload(session: aiohttp.ClientSession, urls: Sequence[str], *documents: Any) -> None:
    for document in documents:
        await call(session, urls, "POST", "/v1/definitions", document)


async def start_instances(
    session: aiohttp.ClientSession,
    urls: Sequence[str],
    definition_id: str,
    count: int,
    *,
    concurrency: int = 8,
) -> list[str]:
    """Start ``count`` instances; the ids the engine confirmed (a start whose answer was lost
    in a fault may exist without being confirmed)."""
    ids: list[str] = []
    numbers = iter(range(count))

    async def starter() -> None:
        for n in numbers:
            body = {
                "definitionId": definition_id,
                "variables": {"n": n},
                "businessKey": f"{definition_id}-{n}",
            }
            started = await call(session, urls, "POST", "/v1/instances", body)
            ids.append(started["id"])

    await asyncio.gather(*(starter() for _ in range(concurrency)))
    return ids


@contextlib.asynccontextmanager
async def connect(dsn_source: Any) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A connection to the engine's database (``dsn_source`` is a DSN or a callable)."""
    dsn = dsn_source() if callable(dsn_source) else dsn_source
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        yield conn
    finally:
        await conn.close()


async def unfinished(dsn: Any) -> int:
    async with connect(dsn) as conn:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM workflow_instance WHERE status NOT IN ('COMPLETED')"
            )
        )


async def settle(dsn: Any, within: float) -> float:
    """Wait until every instance completed (or ``within`` passed); seconds it took."""
    began = time.monotonic()
    while time.monotonic() - began < within:
        try:
            if await unfinished(dsn) == 0:
                break
        except (OSError, asyncpg.PostgresError):
            pass
        await asyncio.sleep(0.25)
    return time.monotonic() - began


# -- figures and invariants -----------------------------------------------------------------------


@attrs.define
class Result:
    scenario: str
    instances: int = 0
    lost: int = 0
    stuck: int = 0
    double_advanced: int = 0
    redelivered: int = 0
    recovery_s: float = 0.0
    extra: dict[str, Any] = attrs.field(factory=dict)
    violations: dict[str, list[str]] = attrs.field(factory=dict)

    def line(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.extra.items())
        return (
            f"{self.scenario}: instances={self.instances} lost={self.lost} stuck={self.stuck}"
            f" double_advanced={self.double_advanced} redelivered={self.redelivered}"
            f" recovery_s={self.recovery_s:.1f}{extra}"
        )

    @property
    def ok(self) -> bool:
        return not (self.lost or self.stuck or self.double_advanced or self.violations)


def invariant_checks() -> list[tuple[str, str]]:
    """``(name, query)`` for each check of ``invariants.sql``."""
    text = INVARIANTS.read_text(encoding="utf-8")
    blocks = re.split(r"^-- check: ([a-z_]+)\n", text, flags=re.M)[1:]
    return [(name, body.strip()) for name, body in zip(blocks[::2], blocks[1::2], strict=True)]


async def check(
    result: Result,
    dsn: Any,
    confirmed: Sequence[str],
    workers: Workers,
) -> Result:
    """Fill in the figures and the invariant violations of a settled scenario."""
    async with connect(dsn) as conn:
        present = {
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM workflow_instance WHERE id = ANY($1::text[])", list(confirmed)
            )
        }
        result.lost = len(set(confirmed) - present)
        result.stuck = int(
            await conn.fetchval(
                "SELECT count(*) FROM workflow_instance WHERE status <> 'COMPLETED'"
            )
        )
        duplicated_steps = int(
            await conn.fetchval(
                "SELECT count(*) FROM (SELECT 1 FROM step_execution"
                " GROUP BY instance_id, step_id, attempt_number HAVING count(*) > 1) AS d"
            )
        )
        lease_expired = int(
            await conn.fetchval("SELECT count(*) FROM audit_log WHERE kind = 'job-lease-expired'")
        )
        timers_twice = int(
            await conn.fetchval(
                "SELECT count(*) FROM (SELECT 1 FROM audit_log WHERE kind = 'timer-fired'"
                " GROUP BY detail->>'scheduleId' HAVING count(*) > 1) AS d"
            )
        )
        for name, query in invariant_checks():
            rows = await conn.fetch(query)
            if rows:
                result.violations[name] = [str(dict(r)) for r in rows[:5]] + (
                    [f"... {len(rows)} in all"] if len(rows) > 5 else []
                )
    _total, _seen_twice, double_held = workers.deliveries()
    # The engine's count: a job a worker claimed but never saw (killed with the poll's
    # answer on the wire) is redelivered too.
    result.redelivered = lease_expired
    result.double_advanced = duplicated_steps + timers_twice + double_held
    if double_held:
        result.extra["double_held"] = double_held
    return result
