"""Group commit: requests that arrive while a batch is being written form the next batch.

Under load, many events wait for the database at the same time; writing them together costs
one read and one write for the whole batch instead of two round trips each. A lone request
is a batch of one, so an idle engine answers as fast as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import attrs

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@attrs.define(eq=False)
class Pending(Generic[T, R]):
    """One request of a batch; the batch's processor settles it with :meth:`done` or
    :meth:`failed`."""

    item: T
    future: asyncio.Future[R]

    def done(self, result: R) -> None:
        if not self.future.done():
            self.future.set_result(result)

    def failed(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


Process = Callable[[list[Pending[T, R]]], Awaitable[Sequence[Pending[T, R]]]]
"""Settles the requests of a batch, except those it returns: they go first into the next one."""


class Batcher(Generic[T, R]):
    """Runs ``process`` over the requests submitted so far, up to ``max_size`` at a time, with
    at most ``runners`` batches in flight.

    ``process`` must settle every request of its batch but those it returns, which lead the
    next batch (a request that cannot share a batch with another one); one it leaves
    unsettled otherwise fails. When it
    raises, the batch's unsettled requests are processed again one by one (a batch's write is
    one statement: nothing of it was written), and the error then fails those it leaves.
    Runners are started on demand and end when the queue is empty, so an idle batcher holds
    no task; :meth:`drain` waits for them.
    """

    def __init__(
        self,
        process: Process[T, R],
        *,
        name: str,
        max_size: int,
        runners: int,
        observe: Callable[[int], None] | None = None,
    ) -> None:
        """``observe`` is given the size of every batch (a metric)."""
        self._process = process
        self._observe = observe
        self._name = name
        self._max_size = max_size
        self._max_runners = runners
        self._queue: deque[Pending[T, R]] = deque()
        self._runners: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        pending: Pending[T, R] = Pending(item, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        if len(self._runners) < self._max_runners:
            task = asyncio.create_task(self._run(), name=f"{self._name}-batch")
            self._runners.add(task)
            task.add_done_callback(self._runners.discard)
        return await pending.future

    async def drain(self) -> None:
        """Until every submitted request is settled."""
        while self._runners:
            runners = set(self._runners)
            await asyncio.gather(*runners, return_exceptions=True)
            # Awaiting finished tasks need not yield to the loop, so their done callbacks
            # (which discard them) may not have run: forget them here, or this would spin.
            self._runners -= runners

    async def _run(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._max_size))]
            await self._settle(batch)

    async def _settle(self, batch: list[Pending[T, R]]) -> None:
        if self._observe is not None:
            self._observe(len(batch))
        try:
            again = await self._process(batch)
            self._queue.extendleft(reversed(again))
            batch = [pending for pending in batch if pending not in again]
        except Exception as exc:
            open_requests = [pending for pending in batch if not pending.future.done()]
            if len(open_requests) > 1:
                # Nothing of a failed batch was written (its write is one statement): run its
                # requests one by one, so that one bad request cannot fail the others.
                log.warning(
                    "%s: a batch of %d failed (%s); one by one", self._name, len(batch), exc
                )
                for pending in open_requests:
                    await self._settle([pending])
            for pending in open_requests:
                pending.failed(exc)
        except BaseException as exc:  # cancelled: settle the batch, then stop
            for pending in batch:
                pending.failed(exc)
            raise
        for pending in batch:
            pending.failed(RuntimeError(f"{self._name}: the batch left a request unsettled"))
