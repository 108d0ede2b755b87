"""Long-poll waiters: woken by the store's job notifications, one claim per wake-up, capped.

Waiters that poll the same job types form a group. Each group has one watcher, the only thing
that waits on the store (``Store.wait_for_jobs``: ``LISTEN``/``NOTIFY`` on PostgreSQL); a
wake-up of the watcher (a notification, or the slow safety re-check) wakes the group's oldest
waiter, which claims. A waiter that claimed a full batch passes the wake-up on to the next
waiter of its group (more jobs may be waiting); one that claimed less, or nothing, does not.
So an idle group costs one claim per re-check interval whatever its size, and a new job costs
one claim, not one per waiter.

The number of waiters per engine is capped; a poll past the cap claims once and answers at
once (possibly with no job), as a short poll does, which every SDK handles: it polls again
after its poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

import attrs

log = logging.getLogger(__name__)

# The safety re-check of a group: a wake-up even without a notification (one missed while the
# listener reconnected, say). One claim per group per interval.
RECHECK_SECONDS = 2.0


@attrs.define(eq=False)
class Waiter:
    """One long poll waiting for jobs."""

    group: _Group
    woken: asyncio.Event = attrs.field(factory=asyncio.Event)

    async def wait(self, seconds: float) -> None:
        """Until woken (then the wake-up is taken), or ``seconds`` pass."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(seconds, 0.0)):
                await self.woken.wait()
        self.woken.clear()


@attrs.define(eq=False)
class _Group:
    job_types: frozenset[str]
    waiters: deque[Waiter] = attrs.field(factory=deque)
    watcher: asyncio.Task[None] | None = None

    def wake_first(self) -> None:
        """Wake the oldest waiter not woken yet (a woken one has a claim coming)."""
        for waiter in self.waiters:
            if not waiter.woken.is_set():
                waiter.woken.set()
                return


WaitForJobs = Callable[[Sequence[str], float], Awaitable[None]]


class PollHub:
    """The long-poll waiters of one engine, grouped by the job types they poll."""

    def __init__(self, wait_for_jobs: WaitForJobs, *, max_waiters: int) -> None:
        self._wait_for_jobs = wait_for_jobs
        self.max_waiters = max_waiters
        self._groups: dict[frozenset[str], _Group] = {}
        self.waiting = 0

    def join(self, job_types: Sequence[str]) -> Waiter | None:
        """A new waiter for ``job_types``; ``None`` past the cap (answer without waiting)."""
        if self.waiting >= self.max_waiters:
            return None
        key = frozenset(job_types)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(job_types=key)
            group.watcher = asyncio.create_task(
                self._watch(group), name=f"poll-watcher-{','.join(sorted(key))}"
            )
        waiter = Waiter(group=group)
        group.waiters.append(waiter)
        self.waiting += 1
        return waiter

    def claimed(self, waiter: Waiter, *, full: bool) -> None:
        """After a claim: a full batch means more jobs may wait, so the next waiter claims."""
        if full:
            waiter.group.wake_first()

    def leave(self, waiter: Waiter) -> None:
        group = waiter.group
        group.waiters.remove(waiter)
        self.waiting -= 1
        if waiter.woken.is_set():
            group.wake_first()  # a wake-up this waiter did not use goes to the next one
        if not group.waiters:
            del self._groups[group.job_types]
            if group.watcher is not None:
                group.watcher.cancel()

    def wake_all(self) -> None:
        """Every waiter claims now (shutdown: they then answer with what they have)."""
        for group in self._groups.values():
            for waiter in group.waiters:
                waiter.woken.set()

    async def _watch(self, group: _Group) -> None:
        types = sorted(group.job_types)
        while True:
            try:
                await self._wait_for_jobs(types, RECHECK_SECONDS * random.uniform(0.9, 1.1))
            except asyncio.CancelledError:
                raise
            except Exception:  # the store failed to wait: re-check after a pause
                log.exception("poll watcher %s failed", types)
                await asyncio.sleep(RECHECK_SECONDS)
            group.wake_first()
