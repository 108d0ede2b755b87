"""Group commit: requests that arrive while a batch is being written form the next batch.

Under load, many events wait for the database at the same time; writing them together costs
one read and one write for the whole batch instead of two round trips each. A lone request
is a batch of one, so an idle engine answers as fast as before.

The batcher runs nothing again by itself: it settles every request with its result or an
error, and the caller's retry policy (:mod:`rochallor_server.service.retry`) decides what is
submitted again, and where (:class:`Placement`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import attrs

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class Placement(enum.Enum):
    """Where a submitted request waits."""

    QUEUED = "queued"
    """At the end of the queue: the first attempt of a request."""
    NEXT = "next"
    """At the head of the queue: it leads the next batch (it had to wait for a batch)."""
    ALONE = "alone"
    """At the head of the queue, in a batch of its own (a batch it shared failed)."""


class BatchFailed(Exception):
    """The batch this request shared with others failed as a whole (``error``, also the
    ``__cause__``): nothing of it was written, and any of its requests may be the cause."""

    def __init__(self, error: Exception, size: int) -> None:
        super().__init__(f"a batch of {size} failed: {error!r}")
        self.error = error
        self.__cause__ = error


@attrs.define(eq=False)
class Pending(Generic[T, R]):
    """One request of a batch; the batch's processor settles it with :meth:`done` or
    :meth:`failed`."""

    item: T
    future: asyncio.Future[R]
    alone: bool = False

    def done(self, result: R) -> None:
        if not self.future.done():
            self.future.set_result(result)

    def failed(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


Process = Callable[[list[Pending[T, R]]], Awaitable[None]]
"""Settles every request of a batch."""


class Batcher(Generic[T, R]):
    """Runs ``process`` over the requests submitted so far, up to ``max_size`` at a time, with
    at most ``runners`` batches in flight: plain group commit.

    ``process`` settles every request of its batch; one it leaves unsettled fails with a
    ``RuntimeError``. When ``process`` raises, the batch's unsettled requests fail: a batch of
    one with the error itself, a larger one each with :class:`BatchFailed`. Between two
    batches a runner yields once to the event loop, so that requests the batch sent back
    (submitted again with :attr:`Placement.NEXT`) lead the very next batch.

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

    async def submit(self, item: T, placement: Placement = Placement.QUEUED) -> R:
        pending: Pending[T, R] = Pending(
            item, asyncio.get_running_loop().create_future(), placement is Placement.ALONE
        )
        if placement is Placement.QUEUED:
            self._queue.append(pending)
        else:
            self._queue.appendleft(pending)
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
        try:
            while self._queue:
                await self._settle(self._take())
                # Let the callers of the settled batch run: one sent back leads the next batch.
                await asyncio.sleep(0)
        finally:
            # Leave at once, not in a done callback: a request submitted after the loop found
            # the queue empty (before such a callback ran) must start a runner of its own.
            task = asyncio.current_task()
            if task is not None:
                self._runners.discard(task)

    def _take(self) -> list[Pending[T, R]]:
        batch = [self._queue.popleft()]
        if batch[0].alone:
            return batch
        while self._queue and len(batch) < self._max_size and not self._queue[0].alone:
            batch.append(self._queue.popleft())
        return batch

    async def _settle(self, batch: list[Pending[T, R]]) -> None:
        if self._observe is not None:
            self._observe(len(batch))
        try:
            await self._process(batch)
        except Exception as exc:
            open_requests = [pending for pending in batch if not pending.future.done()]
            if len(open_requests) == 1:
                open_requests[0].failed(exc)
            elif open_requests:
                log.warning("%s: a batch of %d failed: %r", self._name, len(open_requests), exc)
                for pending in open_requests:
                    pending.failed(BatchFailed(exc, len(open_requests)))
        except BaseException as exc:  # cancelled: settle the batch, then stop
            for pending in batch:
                pending.failed(exc)
            raise
        for pending in batch:
            pending.failed(RuntimeError(f"{self._name}: the batch left a request unsettled"))
