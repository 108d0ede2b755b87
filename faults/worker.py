"""A worker process of the fault suite: the real SDK over REST.

Each delivery is logged (``S``) before the handler's work and again (``E``) when it returns,
with the job id, its retries remaining, this worker's id and a wall-clock time, so that the
suite can count redeliveries and find a job held by two workers at once. One job in ten fails
(retryably) on its first attempt, so retries run during the faults too.

Usage: ``python worker.py URL WORKER_ID JOB_TYPES LOG_PATH [PARALLELISM]``.
"""

from __future__ import annotations

import asyncio
import sys
import time
import zlib
from typing import Any

from rochallor_sdk import Registry, Worker, WorkerSettings

RETRIES = 2  # the retryCount of every service task of the suite's definitions


def main() -> None:
    url, worker_id, job_types, log_path = sys.argv[1:5]
    parallelism = int(sys.argv[5]) if len(sys.argv) > 5 else 16
    log = open(log_path, "a", buffering=1, encoding="ascii")  # noqa: SIM115 - for the process
    registry = Registry()

    async def handle(ctx: dict[str, Any]) -> dict[str, Any]:
        job_id, remaining = ctx["id"], ctx["retriesRemaining"]
        log.write(f"S {job_id} {remaining} {worker_id} {time.time():.6f}\n")
        await asyncio.sleep(0.02 + (zlib.crc32(job_id.encode()) % 100) / 1000)
        if remaining == RETRIES and zlib.crc32(job_id.encode()) % 10 == 0:
            log.write(f"E {job_id} {remaining} {worker_id} {time.time():.6f}\n")
            raise RuntimeError("transient failure (first attempt)")
        log.write(f"E {job_id} {remaining} {worker_id} {time.time():.6f}\n")
        return {f"v_{ctx['stepId']}": job_id}

    for job_type in job_types.split(","):
        registry.register(job_type, handle)
    settings = WorkerSettings(
        engine_url=url,
        worker_id=worker_id,
        parallelism=parallelism,
        long_poll_wait=5.0,
        backoff_initial=0.05,
        backoff_max=0.5,
        shutdown_timeout=2.0,
    )
    Worker(registry, settings=settings).run()


if __name__ == "__main__":
    main()
