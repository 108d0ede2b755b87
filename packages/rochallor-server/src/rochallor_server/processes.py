"""``WE_PROCESSES`` = N: one supervisor and N engine processes on the same ports.

Each engine process is a whole engine (``python -m rochallor_server`` with
``WE_PROCESS_INDEX`` set): its own event loop, connection pool and sweepers, on the shared
database. REST and gRPC listen with ``SO_REUSEPORT``, so the kernel spreads connections over
the processes; process *k* serves metrics on ``WE_METRICS_PORT`` + *k*. Replicas sharing one
database are safe by design (revision-checked writes, ``SKIP LOCKED`` claims, advisory-locked
sweepers and migrations), so the processes need no coordination of their own.

The supervisor forwards SIGTERM and SIGINT, and when one process exits it stops the others
and exits with the first non-zero code (an orchestrator then restarts the whole set).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from types import FrameType

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 30.0


def supervise(count: int) -> int:
    """Run ``count`` engine processes until a signal or the exit of one; their exit code."""
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "rochallor_server"],
            env={**os.environ, "WE_PROCESS_INDEX": str(index)},
        )
        for index in range(count)
    ]
    log.info("supervising %d engine processes: %s", count, [c.pid for c in children])
    stopping = [False]

    def forward(signum: int, _frame: FrameType | None) -> None:
        stopping[0] = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    code = 0
    while any(child.poll() is None for child in children):
        for child in children:
            status = child.poll()
            if status is not None and not stopping[0]:
                log.error("engine process %d exited with %d: stopping the rest", child.pid, status)
                code = status or 1
                forward(signal.SIGTERM, None)
        time.sleep(0.2)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children:
        try:
            status = child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            status = child.wait()
        if status and not code:
            code = status
    # A child stopped by the signal the supervisor forwarded exits 0 (graceful stop).
    return code
