"""A worker whose handler announces its job on stdout and then hangs, for the crash test.

``python killable_worker.py ENGINE_URL JOB_TYPE WORKER_ID`` runs until killed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rochallor_sdk import Registry, Worker

registry = Registry()


def hang(ctx: dict[str, Any]) -> dict[str, Any]:
    announcement = {
        "event": "started",
        "jobId": ctx["id"],
        "lockExpiresAt": ctx["lockExpiresAt"],
        "retriesRemaining": ctx["retriesRemaining"],
    }
    print("EVENT " + json.dumps(announcement), flush=True)
    ctx["leaseLost"].wait(120)
    return {"handledBy": "killed-worker"}


if __name__ == "__main__":
    engine_url, job_type, worker_id = sys.argv[1:4]
    registry.register(job_type, hang)
    Worker(registry, engine_url=engine_url, worker_id=worker_id).run()
