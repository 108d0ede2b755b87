"""The retry policy: what is run again when an operation did not get through, and how often.

Every event, and the other operations marked ``@_operation`` in :mod:`.workflow_service`, run
under :meth:`RetryPolicy.run`, and nothing else runs anything again (the group-commit
:class:`~rochallor_server.service.batching.Batcher` only settles each request with its result
or an error). An attempt of an event is: read the instance, decide with the pure core, write
all commands in one statement guarded by the revision read. Nothing of a failed attempt was
written, so running it again is safe. Four cases:

=========================  =====================================  ===========================
The attempt ended with      Because                                Then
=========================  =====================================  ===========================
``InstanceChanged``         another event wrote the instance       (a) decide again on fresh
                            after this one read it                 state, after a short
                                                                   jittered pause, up to
                                                                   ``stale_attempts`` times
``TransientStorageError``   the database aborted the write         (b) run again, after a
(also as a batch's error)   (deadlock victim, serialisation        jittered backoff growing
                            failure): it rolled back whole         with each abort, up to
                                                                   ``aborted_attempts`` times
``BatchFailed``             the batch the event shared failed as   (c) written alone from now
                            a whole (any of its events may have    on (at once): one bad event
                            broken the statement)                  cannot fail the others; its
                                                                   own error is then final
``RunAfterBatch``           an earlier event of the same instance  run again at once, leading
                            is written in this batch (one event    the next batch, decided on
                            per instance per write)                what that event wrote
=========================  =====================================  ===========================

The last case is not counted: nothing of the event ran, and each time an earlier event of its
instance was written first, so the events of one instance (parallel branches completing
together) get through in as many batches as there are of them, one batch after another. Each
stale decision also lost to a write that committed, so racing events make progress too; the
bound on (a) only stops a runaway. Any other error is the operation's answer.

Batched operations learn where to queue their request from :func:`placement`: at the end of
the queue at first, leading the next batch after a :class:`RunAfterBatch`, alone after a
:class:`BatchFailed`.

Why this shape: running again is always the caller's own task submitting its request again,
so the counts and limits of an event live in one loop (:meth:`RetryPolicy.run`) and the
batcher keeps no retry state. It costs the hot path nothing: an event that gets through is one
attempt, and an event sent after the batch waits for no timer, since the batcher yields once
between two batches and the events sent back, submitted again in that moment, lead the next.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs

from rochallor_server.errors import InstanceChanged, TransientStorageError
from rochallor_server.service.batching import BatchFailed, Placement

log = logging.getLogger(__name__)

R = TypeVar("R")


class RunAfterBatch(Exception):
    """A batch settles an event with this when an earlier event of the same instance is
    written in it: the event is submitted again at once and leads the next batch."""


_placement: contextvars.ContextVar[Placement] = contextvars.ContextVar(
    "rochallor_retry_placement", default=Placement.QUEUED
)


def placement() -> Placement:
    """Where the attempt in progress submits its batched request (see the module docstring)."""
    return _placement.get()


def _nothing() -> None:
    return None


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """The cases and limits of the module docstring; one instance serves every operation."""

    stale_attempts: int = 64
    """(a) decisions on stale state before ``InstanceChanged`` is the answer."""
    stale_pause: float = 0.001
    """(a) seconds, times the attempt (at most 10), jittered: the winner's follow-ups first."""
    aborted_attempts: int = 4
    """(b) runs the database aborted before ``TransientStorageError`` is the answer."""
    aborted_backoff: float = 0.01
    """(b) seconds, times the aborts so far, jittered."""
    sleep: Callable[[float], Awaitable[None]] = attrs.field(
        default=asyncio.sleep, eq=False, repr=False
    )

    async def run(
        self,
        attempt: Callable[[], Awaitable[R]],
        *,
        name: str,
        on_stale: Callable[[], None] = _nothing,
    ) -> R:
        """``attempt()`` until it answers or fails with an error no case covers; ``on_stale``
        is called for each decision made again (a metric)."""
        stale = aborted = 0
        where = Placement.QUEUED
        while True:
            token = _placement.set(where)
            try:
                return await attempt()
            except (RunAfterBatch, BatchFailed, TransientStorageError) as exc:
                error: Exception = exc
            finally:
                _placement.reset(token)
            if isinstance(error, BatchFailed):
                if not isinstance(error.error, TransientStorageError):
                    where = Placement.ALONE  # (c)
                    continue
                error = error.error  # the whole batch was aborted: (a) or (b) below
            if isinstance(error, RunAfterBatch):
                if where is not Placement.ALONE:
                    where = Placement.NEXT
                continue
            if where is Placement.NEXT:
                where = Placement.QUEUED
            if isinstance(error, InstanceChanged):
                stale += 1
                if stale >= self.stale_attempts:
                    raise error
                on_stale()
                await self.sleep(random.uniform(0, self.stale_pause * min(stale, 10)))
            else:
                aborted += 1
                if aborted >= self.aborted_attempts:
                    raise error
                log.info("%s: the database aborted it (%s); running it again", name, error)
                await self.sleep(random.uniform(0, self.aborted_backoff * aborted))


POLICY = RetryPolicy()
"""The engine's policy."""
