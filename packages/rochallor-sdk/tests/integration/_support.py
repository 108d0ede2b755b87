"""Helpers shared by the integration tests (waiting with deadlines, definitions, metrics)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from rochallor_sdk import AdminClient, Worker, WorkerSettings, create_client

from ._engine import EngineProcess

CONFORMANCE = Path(__file__).resolve().parents[4] / "conformance"
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
TRANSPORTS = ["rest", "grpc"]


def load_definition(name: str) -> dict[str, Any]:
    """A valid definition of the conformance suite, e.g. ``order-fulfilment``."""
    path = CONFORMANCE / "definitions" / "valid" / f"{name}.json"
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def service_task_flow(definition_id: str, job_type: str, *, retry_count: int = 0) -> dict[str, Any]:
    """One SERVICE_TASK of ``job_type``, then END."""
    return {
        "id": definition_id,
        "name": f"Run {job_type}",
        "steps": [
            {
                "id": "task",
                "name": "Task",
                "type": "SERVICE_TASK",
                "jobType": job_type,
                "retryCount": retry_count,
                "nextStep": "end",
            },
            {"id": "end", "name": "End", "type": "END"},
        ],
    }


def settings(**overrides: Any) -> WorkerSettings:
    """Worker settings for the tests: defaults of the SDK except for shorter waits.

    ``long_poll_wait`` is 2 s rather than 20 s: over REST the engine does not notice that a
    stopped worker gave up its long poll, and may still claim a job for it until the wait
    ends (see ``test_a_stopped_workers_long_poll_claims_nothing``).
    """
    values: dict[str, Any] = {
        "parallelism": 4,
        "long_poll_wait": 2.0,
        "poll_interval": 0.2,
        "request_timeout": 5.0,
        "shutdown_timeout": 5.0,
        "backoff_max": 2.0,
    }
    values.update(overrides)
    return WorkerSettings(**values)


@asynccontextmanager
async def admin(url: str, transport: str) -> AsyncIterator[AdminClient]:
    client = create_client(url, transport)
    try:
        yield client
    finally:
        await client.close()


async def wait_for_status(
    client: AdminClient,
    instance_id: str,
    statuses: frozenset[str] | set[str] = TERMINAL,
    *,
    timeout: float = 20.0,
) -> dict[str, Any]:
    """Poll ``get_instance`` until its status is one of ``statuses``; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    instance: dict[str, Any] = {}
    while time.monotonic() < deadline:
        instance = await client.get_instance(instance_id)
        if instance.get("status") in statuses:
            return instance
        await asyncio.sleep(0.05)
    raise AssertionError(
        f"instance {instance_id} not in {sorted(statuses)} after {timeout}s: {instance}"
    )


async def wait_until(predicate: Callable[[], bool], what: str, *, timeout: float = 20.0) -> float:
    """Poll ``predicate`` until it holds; return the ``time.monotonic()`` when it did."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


async def wait_for_parked_poll(engine: EngineProcess, *, timeout: float = 10.0) -> None:
    """Wait until a long poll has reached ``engine`` and found nothing:
    the engine counts one ``poll_jobs`` transaction per claim attempt."""
    deadline = time.monotonic() + timeout
    name = "engine_db_transaction_duration_seconds_count"
    while await asyncio.to_thread(engine.metric, name, tx_type="poll_jobs") < 1:
        if time.monotonic() > deadline:
            raise AssertionError(f"no poll reached the engine in {timeout}s")
        await asyncio.sleep(0.02)


def metric(worker: Worker, name: str, **labels: str) -> float:
    """Current value of one of the worker's own metrics (0 when never touched)."""
    value = worker.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def completed_steps(history: list[dict[str, Any]]) -> list[str]:
    return [item["stepId"] for item in history if item["status"] == "COMPLETED"]


HERE = Path(__file__).resolve().parent


class WorkerProcess:
    """A worker script of this folder in its own Python process.

    Output (stdout and stderr) is collected in :attr:`output`; lines the script prints as
    ``EVENT {json}`` are also queued for :meth:`next_event`.
    """

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.output: list[str] = []
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(
        cls, script: str, *args: str, env: dict[str, str] | None = None
    ) -> WorkerProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE / script),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.output.append(line)
            if line.startswith("EVENT "):
                self.events.put_nowait(json.loads(line.removeprefix("EVENT ")))

    def describe(self) -> str:
        return "worker process output:\n" + "\n".join(self.output)

    async def next_event(self, timeout: float = 20.0) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self.events.get(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"no event from the worker in {timeout}s; {self.describe()}"
            ) from None

    async def signal(self, signum: int, timeout: float = 15.0) -> int:
        """Send ``signum`` and wait for the exit; return the exit code."""
        if self.proc.returncode is None:
            self.proc.send_signal(signum)
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(f"worker still running {timeout}s after {signum}") from None
        finally:
            await self._reader
        return code
