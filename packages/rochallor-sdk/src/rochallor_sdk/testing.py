"""An in-memory :class:`~rochallor_sdk.JobClient` for unit-testing handlers and workers.

It keeps a job queue, records every call, and follows the engine's rules closely enough
for worker tests: a retryable failure with retries left puts the job back with one retry
less (``semantics.md`` §8.6), completions are first-wins, leases are ``lease`` seconds.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from rochallor_sdk import _errors
from rochallor_sdk.client import _base


@attrs.frozen(kw_only=True)
class PollCall:
    worker_id: str
    job_types: tuple[str, ...]
    max_jobs: int
    wait: float
    at: float  # loop time


@attrs.frozen(kw_only=True)
class FailCall:
    job_id: str
    worker_id: str
    error_message: str
    retryable: bool


class InMemoryJobClient:
    """Fake transport. ``long_poll``: honour ``wait`` (hold an empty poll until a job is
    added or ``wait`` passes); otherwise answer at once, like an engine without long-poll.
    ``batch_complete=False`` imitates an engine without ``POST /v1/jobs/batch-complete``:
    ``complete_many`` raises :class:`~rochallor_sdk.NotFound` (404) for the whole call."""

    def __init__(
        self, *, lease: float = 30.0, long_poll: bool = True, batch_complete: bool = True
    ) -> None:
        self.lease = lease
        self.long_poll = long_poll
        self.batch_complete = batch_complete
        self.queue: list[_base.Job] = []
        self.polls: list[PollCall] = []
        self.completed: dict[str, dict[str, Any]] = {}
        self.completions: list[tuple[str, str, dict[str, Any]]] = []
        #: Job ids of every ``complete_many`` call, one list per call (refused ones too).
        self.batches: list[list[str]] = []
        self.failures: list[FailCall] = []
        self.extensions: list[str] = []
        self.closed = False
        #: Raise this from the next ``poll`` calls (``None``: answer normally).
        self.poll_error: Exception | None = None
        #: Called on ``extend_lease``; may raise (e.g. ``LeaseLost``) or return a lease end.
        self.on_extend: Callable[[str], datetime.datetime | None] | None = None
        #: Called with the job id of every completion, single or batched; may raise (e.g.
        #: ``TransportError`` or ``ApiError``) to refuse it, and then nothing is recorded.
        self.on_complete: Callable[[str], None] | None = None
        self._held: dict[str, _base.Job] = {}
        self._ids = itertools.count(1)
        self._changed: asyncio.Event | None = None

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _notify(self) -> None:
        self._event().set()

    def add_job(
        self,
        job_type: str,
        variables: Mapping[str, Any] | None = None,
        *,
        retries: int = 0,
        job_id: str | None = None,
    ) -> str:
        """Queue a job; return its id."""
        job = _base.Job(
            id=job_id or f"job-{next(self._ids)}",
            job_type=job_type,
            instance_id="instance-1",
            step_id=f"step-{job_type}",
            step_execution_id="exec-1",
            retries_remaining=retries,
            variables=dict(variables or {}),
        )
        self.queue.append(job)
        if self._changed is not None:
            self._notify()
        return job.id

    async def wait_until(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Return once ``predicate()`` holds, re-checking after every recorded call."""
        async with asyncio.timeout(within):
            while not predicate():
                event = self._event()
                event.clear()
                await event.wait()

    # --- JobClient -------------------------------------------------------------------------

    async def poll(
        self, *, worker_id: str, job_types: Sequence[str], max_jobs: int, wait: float
    ) -> list[_base.Job]:
        self.polls.append(
            PollCall(
                worker_id=worker_id,
                job_types=tuple(job_types),
                max_jobs=max_jobs,
                wait=wait,
                at=asyncio.get_running_loop().time(),
            )
        )
        self._notify()
        if self.poll_error is not None:
            raise self.poll_error
        claimed = self._claim(job_types, max_jobs)
        if not claimed and self.long_poll and wait > 0:
            try:
                async with asyncio.timeout(wait):
                    while not claimed:
                        event = self._event()
                        event.clear()
                        await event.wait()
                        claimed = self._claim(job_types, max_jobs)
            except TimeoutError:
                pass
        return claimed

    def _claim(self, job_types: Sequence[str], max_jobs: int) -> list[_base.Job]:
        claimed: list[_base.Job] = []
        for job in list(self.queue):
            if len(claimed) >= max_jobs:
                break
            if job.job_type in job_types:
                self.queue.remove(job)
                self._held[job.id] = job
                claimed.append(attrs.evolve(job, lock_expires_at=self._lease_end()))
        return claimed

    def _lease_end(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=self.lease)

    async def complete(
        self, job_id: str, *, worker_id: str, variables: Mapping[str, Any] | None
    ) -> None:
        try:
            self._complete(job_id, worker_id, variables)
        finally:
            self._notify()

    async def complete_many(
        self, *, worker_id: str, completions: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[Exception | None]:
        _base.check_complete_many(completions)
        self.batches.append([job_id for job_id, _ in completions])
        try:
            if not self.batch_complete:
                raise _errors.NotFound("404 page not found", status=404, operation="complete_many")
            results: list[Exception | None] = []
            for job_id, variables in completions:
                try:
                    self._complete(job_id, worker_id, variables)
                except Exception as exc:
                    results.append(exc)
                else:
                    results.append(None)
            return results
        finally:
            self._notify()

    def _complete(self, job_id: str, worker_id: str, variables: Mapping[str, Any] | None) -> None:
        if self.on_complete is not None:
            self.on_complete(job_id)
        self.completions.append((job_id, worker_id, dict(variables or {})))
        self.completed.setdefault(job_id, dict(variables or {}))

    async def fail(
        self, job_id: str, *, worker_id: str, error_message: str, retryable: bool
    ) -> None:
        self.failures.append(
            FailCall(
                job_id=job_id,
                worker_id=worker_id,
                error_message=error_message,
                retryable=retryable,
            )
        )
        job = self._held.pop(job_id, None)
        if job is not None and retryable and job.retries_remaining > 0:
            # Back to the queue with one retry less, as the engine does.
            self.queue.append(attrs.evolve(job, retries_remaining=job.retries_remaining - 1))
        self._notify()

    async def extend_lease(self, job_id: str, worker_id: str) -> datetime.datetime:
        self.extensions.append(job_id)
        self._notify()
        if self.on_extend is not None:
            answer = self.on_extend(job_id)
            if answer is not None:
                return answer
        return self._lease_end()

    async def close(self) -> None:
        self.closed = True


def lease_lost(job_id: str) -> datetime.datetime | None:
    """An ``on_extend`` hook that refuses every extension, as an engine whose lease moved on."""
    raise _errors.LeaseLost(job_id, "caller no longer holds the lease")


__all__ = ["FailCall", "InMemoryJobClient", "PollCall", "lease_lost"]
