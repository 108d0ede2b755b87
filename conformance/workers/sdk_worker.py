"""Conformance worker on the Python SDK (``rochallor_sdk``), over REST or gRPC (``--grpc``).

Implements the worker protocol of docs/conformance.md. Job types whose behaviours need the SDK
to let a lease lapse (``abandon``, or a delay with ``"extendLease": false``) are served by a
small loop over the SDK's transport client; every other job type by the SDK's ``Worker``
itself, so its polling, lease extension and reporting are what the scenarios exercise.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from rochallor_sdk import LeaseLost, NonRetryableError, Registry, Worker, create_client

log = logging.getLogger("conformance-worker")


class Script:
    """The behaviour script and the attempt counter per job id."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.job_types: dict[str, list[dict[str, Any]]] = {
            job_type: list(spec["attempts"]) for job_type, spec in document["jobTypes"].items()
        }
        self.attempts: dict[str, int] = {}

    def next_behaviour(self, job_type: str, job_id: str) -> dict[str, Any]:
        attempt = self.attempts.get(job_id, 0) + 1
        self.attempts[job_id] = attempt
        behaviours = self.job_types[job_type]
        return behaviours[min(attempt, len(behaviours)) - 1]

    def needs_lapse(self, job_type: str) -> bool:
        return any(
            b["action"] == "abandon"
            or (b.get("extendLease") is False and (b.get("delayLeases") or b.get("delaySeconds")))
            for b in self.job_types[job_type]
        )


def lease_seconds(lock_expires_at: str | dt.datetime | None) -> float:
    if lock_expires_at is None:
        return 30.0
    if isinstance(lock_expires_at, str):
        lock_expires_at = dt.datetime.fromisoformat(lock_expires_at.replace("Z", "+00:00"))
    return max((lock_expires_at - dt.datetime.now(dt.UTC)).total_seconds(), 0.0)


def delay_of(behaviour: Mapping[str, Any], lease: float) -> float:
    return (
        float(behaviour.get("delaySeconds") or 0) + float(behaviour.get("delayLeases") or 0) * lease
    )


def sdk_handler(script: Script, job_type: str) -> Any:
    async def handle(ctx: dict[str, Any]) -> dict[str, Any] | None:
        behaviour = script.next_behaviour(job_type, ctx["id"])
        # the SDK keeps extending the lease while this sleeps
        await asyncio.sleep(delay_of(behaviour, lease_seconds(ctx.get("lockExpiresAt"))))
        if behaviour["action"] == "complete":
            return dict(behaviour.get("variables") or {})
        message = str(behaviour.get("errorMessage") or "")
        if behaviour.get("retryable"):
            raise RuntimeError(message)
        raise NonRetryableError(message or "failed")

    return handle


async def lapse_loop(script: Script, job_types: list[str], url: str, transport: str) -> None:
    """Poll, then do exactly what the script says, letting leases lapse where it says so."""
    worker_id = f"conformance-sdk-lapse-{os.getpid()}"
    client = create_client(url, transport)
    running: set[asyncio.Task[None]] = set()

    async def handle(job: Any) -> None:
        behaviour = script.next_behaviour(job.job_type, job.id)
        if behaviour["action"] == "abandon":
            return
        lease = lease_seconds(job.lock_expires_at)
        remaining = delay_of(behaviour, lease)
        while remaining > 0:
            step = min(remaining, lease / 3) if behaviour.get("extendLease") else remaining
            await asyncio.sleep(step)
            remaining -= step
            if behaviour.get("extendLease") and remaining > 0:
                with contextlib.suppress(LeaseLost):
                    await client.extend_lease(job.id, worker_id)
        if behaviour["action"] == "complete":
            await client.complete(job.id, worker_id=worker_id, variables=behaviour.get("variables"))
        else:
            await client.fail(
                job.id,
                worker_id=worker_id,
                error_message=str(behaviour.get("errorMessage") or ""),
                retryable=bool(behaviour.get("retryable")),
            )

    try:
        while True:
            try:
                jobs = await client.poll(
                    worker_id=worker_id, job_types=job_types, max_jobs=16, wait=1.0
                )
            except Exception as exc:
                log.warning("poll failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            for job in jobs:
                task = asyncio.create_task(handle(job))
                running.add(task)
                task.add_done_callback(running.discard)
            if not jobs:
                await asyncio.sleep(0.1)
    finally:
        for task in running:
            task.cancel()
        await client.close()


async def main(script: Script) -> None:
    transport: Literal["rest", "grpc"] = "grpc" if "--grpc" in sys.argv[1:] else "rest"
    url = os.environ["ROCHALLOR_GRPC_TARGET" if transport == "grpc" else "ROCHALLOR_ENGINE_URL"]
    lapsing = [t for t in script.job_types if script.needs_lapse(t)]
    registry = Registry()
    for job_type in script.job_types:
        if job_type not in lapsing:
            registry.register(job_type, sdk_handler(script, job_type))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    tasks = []
    if lapsing:
        tasks.append(asyncio.create_task(lapse_loop(script, lapsing, url, transport)))
    if len(lapsing) == len(script.job_types):
        await stop.wait()
    else:
        await run_sdk_worker(registry, url, transport, stop)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def run_sdk_worker(
    registry: Registry, url: str, transport: Literal["rest", "grpc"], stop: asyncio.Event
) -> None:
    worker = Worker(
        registry,
        engine_url=url,
        transport=transport,
        worker_id=f"conformance-sdk-{transport}-{os.getpid()}",
        parallelism=64,
        poll_interval=0.05,
        shutdown_timeout=1.0,
        handle_signals=False,
    )
    async with worker:
        await stop.wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(
        main(Script(json.loads(Path(os.environ["ROCHALLOR_CONFORMANCE_SCRIPT"]).read_bytes())))
    )
