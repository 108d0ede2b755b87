"""Client-side group commit of job completions over ``JobClient.complete_many``."""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
from collections.abc import Mapping
from typing import Any

import attrs

from rochallor_sdk import _errors
from rochallor_sdk.client import _base as client_base

logger = logging.getLogger("rochallor_sdk.worker")


class _SendAlone(enum.Enum):
    """Answer to a queued completion: no batch will carry it, its caller sends it alone."""

    SEND_ALONE = enum.auto()


_SEND_ALONE = _SendAlone.SEND_ALONE
_Answer = Exception | None | _SendAlone


@attrs.define(eq=False)
class _Queued:
    job_id: str
    variables: Mapping[str, Any]
    answer: asyncio.Future[_Answer]


class CompletionSender:
    """Sends job completions in groups, one ``complete_many`` call at a time.

    A call carries everything queued when it starts (up to ``limit``); completions that
    arrive while it is in flight form the next call. There is no timer: a lone completion
    leaves at once. When the engine answers 404 for the batch call itself (it has no batch
    endpoint), every completion from then on is sent with a single ``complete`` call, as
    are all completions when the client has no ``complete_many``.

    Use it from one event loop: :meth:`start`, then :meth:`complete` from any task, then
    :meth:`close`.
    """

    def __init__(
        self,
        client: client_base.JobClient,
        worker_id: str,
        *,
        limit: int = client_base.COMPLETE_MANY_LIMIT,
    ) -> None:
        if not 1 <= limit <= client_base.COMPLETE_MANY_LIMIT:
            raise ValueError(f"limit must be in 1..{client_base.COMPLETE_MANY_LIMIT}")
        self._client = client
        self._worker_id = worker_id
        self._limit = limit
        self._queue: collections.deque[_Queued] = collections.deque()
        self._in_flight: list[_Queued] = []
        self._wakeup = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        #: Whether completions still go through ``complete_many``. A client written before
        #: ``complete_many`` existed gets single calls.
        self.batching = callable(getattr(client, "complete_many", None))

    def start(self) -> None:
        """Start the sender task on the running loop."""
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_loop(), name="rochallor-completions")

    async def close(self) -> None:
        """Stop the sender. Completions it still held go back to their callers, which
        send them alone."""
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)

    async def complete(self, job_id: str, variables: Mapping[str, Any]) -> Exception | None:
        """Complete one job: ``None`` when the engine accepted it, else the error that a
        single ``complete`` call would have raised for it."""
        if self.batching and self._sender is not None and not self._sender.done():
            answer: asyncio.Future[_Answer] = asyncio.get_running_loop().create_future()
            self._queue.append(_Queued(job_id, variables, answer))
            self._wakeup.set()
            outcome = await answer
            if outcome is not _SEND_ALONE:
                return outcome
        try:
            await self._client.complete(job_id, worker_id=self._worker_id, variables=variables)
        except (_errors.TransportError, _errors.ApiError) as exc:
            return exc
        return None

    async def _send_loop(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self.batching and self._queue:
                    self._in_flight = self._take()
                    if self._in_flight:
                        await self._send(self._in_flight)
                    self._in_flight = []
        finally:
            # Cancelled (close) or broken: whatever is left is sent alone by its caller.
            self.batching = False
            for item in [*self._in_flight, *self._queue]:
                _answer(item, _SEND_ALONE)
            self._in_flight = []
            self._queue.clear()

    def _take(self) -> list[_Queued]:
        batch: list[_Queued] = []
        while self._queue and len(batch) < self._limit:
            item = self._queue.popleft()
            if not item.answer.done():  # done: its caller was cancelled meanwhile
                batch.append(item)
        return batch

    async def _send(self, batch: list[_Queued]) -> None:
        results: list[Exception | None]
        try:
            results = await self._client.complete_many(
                worker_id=self._worker_id,
                completions=[(item.job_id, item.variables) for item in batch],
            )
            if len(results) != len(batch):
                raise ValueError(
                    f"complete_many returned {len(results)} results for {len(batch)} completions"
                )
        except _errors.NotFound as exc:
            logger.info(
                "the engine has no batch completion endpoint (%s); completing jobs one by one "
                "from now on",
                exc,
            )
            self.batching = False
            for item in [*batch, *self._queue]:
                _answer(item, _SEND_ALONE)
            self._queue.clear()
            return
        except (_errors.TransportError, _errors.ApiError) as exc:
            # The whole call failed: each completion failed the way a single call would.
            results = [exc] * len(batch)
        except Exception as exc:
            logger.exception("sending %d completion(s) failed unexpectedly", len(batch))
            results = [exc] * len(batch)
        for item, result in zip(batch, results, strict=True):
            _answer(item, result)


def worth_retrying(exc: Exception) -> bool:
    """Whether a completion the engine did not accept may go through when sent again: the
    engine could not be reached, or it failed on its side (HTTP 5xx, gRPC ``INTERNAL``,
    ``UNAVAILABLE``, ``UNKNOWN``, ``DEADLINE_EXCEEDED``); not when it refused the request."""
    if isinstance(exc, _errors.TransportError):
        return True
    if isinstance(exc, _errors.ApiError):
        if isinstance(exc.status, int):
            return exc.status >= 500
        return exc.status in ("INTERNAL", "UNAVAILABLE", "UNKNOWN", "DEADLINE_EXCEEDED")
    return False


def _answer(item: _Queued, outcome: _Answer) -> None:
    if not item.answer.done():
        item.answer.set_result(outcome)


__all__ = ["CompletionSender", "worth_retrying"]
