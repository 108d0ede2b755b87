"""Waking long polls: one ``LISTEN`` connection per store on :data:`JOBS_CHANNEL`.

The statements that make a job claimable (the apply statement, ``reclaim_expired_leases``)
``pg_notify`` this channel with the job type in their own transaction, so a notification is
delivered exactly when the job becomes visible (at commit). :class:`JobListener` turns each
into a wake-up of the pollers waiting for that type.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from rochallor_server.store.postgres.statements import STATEMENTS

log = logging.getLogger(__name__)

JOBS_CHANNEL = "rochallor_jobs"
"""The channel (payload: a job type) that the SQL notifies; the name is spelled in the SQL too."""

_PING = STATEMENTS["ping"]

# asyncpg's classes are generic only in their stubs, hence the quoted alias.
Pool: TypeAlias = "asyncpg.Pool[Any]"


class JobListener:
    """One ``LISTEN`` connection per store, (re)opened in the background, and its waiters.

    While the connection is down, waiters simply run into their timeouts. Every (re)connect
    wakes all waiters, since notifications sent while nobody listened are lost.
    """

    def __init__(
        self, pool: Pool, *, health_interval: float, reconnect_delay: tuple[float, float]
    ) -> None:
        self._pool = pool
        self._health_interval = health_interval
        self._min_delay, self._max_delay = reconnect_delay
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name="rochallor-job-listener")

    async def wait_connected(self, seconds: float) -> bool:
        self.start()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._connected.wait()
        return self.connected

    async def wait(self, job_types: Sequence[str], seconds: float) -> None:
        event = asyncio.Event()
        types = set(job_types)
        for job_type in types:
            self._waiters.setdefault(job_type, set()).add(event)
        try:
            self.start()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(seconds, 0)):
                    await event.wait()
        finally:
            for job_type in types:
                waiting = self._waiters.get(job_type)
                if waiting is not None:
                    waiting.discard(event)
                    if not waiting:
                        del self._waiters[job_type]

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._wake_all()

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        for event in self._waiters.get(str(payload), ()):
            event.set()

    async def _run(self) -> None:
        delay = self._min_delay
        while not self._closed:
            try:
                await self._listen_once()
                delay = self._min_delay  # it was up: retry promptly
            except Exception as exc:  # any failure means: reconnect later
                log.warning("job listener: %s; reconnecting in %.1fs", exc, delay)
                delay_now, delay = delay, min(delay * 2, self._max_delay)
                await asyncio.sleep(delay_now)
            else:
                await asyncio.sleep(delay)

    async def _listen_once(self) -> None:
        """Listen on one pooled connection until it breaks (or the task is cancelled)."""
        conn = await self._pool.acquire()
        lost = asyncio.Event()

        def on_lost(_conn: object) -> None:
            lost.set()

        healthy = False
        try:
            conn.add_termination_listener(on_lost)
            await conn.add_listener(JOBS_CHANNEL, self._on_notification)
            healthy = True
            self._connected.set()
            log.info("job listener: listening on %s", JOBS_CHANNEL)
            self._wake_all()
            await self._watch(conn, lost)
            healthy = False
            log.warning("job listener: connection lost")
        finally:
            self._connected.clear()
            await self._release(conn, on_lost, healthy=healthy)

    async def _watch(self, conn: PoolConnectionProxy[Any], lost: asyncio.Event) -> None:
        """Return when the connection is gone or stops answering."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._health_interval):
                    await lost.wait()
                    return
            # A silently dropped TCP connection delivers nothing: probe it now and then.
            try:
                await conn.execute(_PING, timeout=min(self._health_interval, 10))
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
                return

    async def _release(
        self,
        conn: PoolConnectionProxy[Any],
        on_lost: Callable[[Any], None],
        *,
        healthy: bool,
    ) -> None:
        """Give a working connection back to the pool; close a broken one."""
        try:
            conn.remove_termination_listener(on_lost)
            if not healthy:
                conn.terminate()
                return
            await conn.remove_listener(JOBS_CHANNEL, self._on_notification)
            await self._pool.release(conn, timeout=10)
        except asyncpg.InterfaceError:
            # A connection that died has already left the pool (its proxy is detached).
            pass
        except (asyncpg.PostgresError, OSError, TimeoutError):
            with contextlib.suppress(asyncpg.InterfaceError):
                conn.terminate()
