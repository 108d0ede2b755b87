"""One lifecycle for every long-running background task: ``run()`` / ``stop()``, a stop event,
a bounded drain, then cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

from rochallor_server.errors import StorageUnavailable
from rochallor_server.service.ports import Store

log = logging.getLogger(__name__)


class PeriodicTask:
    """Runs ``tick()`` every ``interval`` seconds (with a little jitter) until stopped.

    With ``lock_key``, each tick first takes that PostgreSQL advisory lock; replicas that do not
    get it skip the tick silently, so N replicas sweep once (``semantics.md`` §18).
    """

    def __init__(
        self,
        name: str,
        tick: Callable[[], Awaitable[int]],
        *,
        interval: float,
        store: Store | None = None,
        lock_key: int | None = None,
    ) -> None:
        self.name = name
        self._tick = tick
        self.interval = interval
        self._store = store
        self._lock_key = lock_key
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0

    def start(self) -> None:
        self._stop.clear()  # a stopped task may be started again
        self._task = asyncio.create_task(self.run(), name=self.name)

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.tick_once()
            except asyncio.CancelledError:
                raise
            except StorageUnavailable as exc:  # an outage, not a bug: no traceback every tick
                log.warning("%s: tick skipped: %s", self.name, exc.message)
            except Exception:
                log.exception("%s: tick failed", self.name)
            delay = self.interval * random.uniform(0.9, 1.1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=delay)

    async def tick_once(self) -> int:
        """One sweep (under the advisory lock when configured); returns what it processed."""
        self.ticks += 1
        if self._store is None or self._lock_key is None:
            return await self._tick()
        async with self._store.advisory_lock(self._lock_key) as leader:
            if not leader:
                return 0
            return await self._tick()

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Ask the loop to stop, let the current tick finish, cancel after the timeout."""
        self._stop.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=drain_timeout)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
