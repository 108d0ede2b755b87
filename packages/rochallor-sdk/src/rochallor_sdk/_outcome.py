"""One handler call and its outcome, decided the same way for the polling and the Kafka worker.

:class:`HandlerCall` starts the handler (``async def`` on the event loop, a sync one in the
worker's thread pool) and turns what it did into an :data:`Outcome`: the variables to complete
the job with, the failure to report, or the cancellation this worker asked for. What each
worker then does with the outcome (report it, hand the job back, commit a record) is its own.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import logging
from collections.abc import Awaitable, Mapping
from concurrent.futures import Executor
from typing import Any, TypeAlias

import attrs

from rochallor_sdk import _errors, _registry


@attrs.frozen(kw_only=True)
class Completed:
    """The handler returned: complete the job with ``variables`` (``{}``: no change)."""

    variables: dict[str, Any]


@attrs.frozen(kw_only=True)
class Failed:
    """The handler raised, or returned something that cannot be sent: fail the job."""

    message: str
    retryable: bool


@attrs.frozen(kw_only=True)
class Cancelled:
    """This worker cancelled the handler (lease lost, shutdown timeout): nothing to report."""

    reason: str


Outcome: TypeAlias = Completed | Failed | Cancelled


def normalise_result(value: object) -> dict[str, Any]:
    """Handler return value → the JSON object sent as ``variables``.

    Raises :class:`~rochallor_sdk.HandlerResultError` for anything else than a mapping with
    string keys and JSON-serialisable values (``NaN`` and ``Infinity`` included).
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _errors.HandlerResultError(
            f"handler must return a dict or None, got {type(value).__name__}"
        )
    bad_keys = [key for key in value if not isinstance(key, str)]
    if bad_keys:
        raise _errors.HandlerResultError(
            f"handler result keys must be strings (variable names), got {bad_keys[0]!r}"
        )
    try:
        encoded = json.dumps(dict(value), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _errors.HandlerResultError(f"handler result is not JSON-serialisable: {exc}") from exc
    result: dict[str, Any] = json.loads(encoded)
    return result


def failure(exc: Exception) -> Failed:
    """The failure to report for an exception: terminal for :class:`NonRetryableError` and
    :class:`HandlerResultError` (retrying gives the same result), retryable otherwise. The
    message is ``str(exc)``, or the exception's class name when that is empty."""
    terminal = isinstance(exc, _errors.NonRetryableError | _errors.HandlerResultError)
    return Failed(message=str(exc) or type(exc).__name__, retryable=not terminal)


def completion(value: object) -> Completed | Failed:
    """The outcome of a handler that returned ``value``."""
    try:
        return Completed(variables=normalise_result(value))
    except _errors.HandlerResultError as exc:
        return failure(exc)


class HandlerCall:
    """One run of ``handler(ctx)``, started on construction.

    :meth:`cancel` stops it with a reason (an ``async def`` handler is cancelled; a sync one
    cannot be stopped in its thread, but its result is no longer awaited); :meth:`outcome`
    awaits it once. ``log`` gets a debug record, with the traceback, of a handler that raised.
    """

    def __init__(
        self,
        handler: _registry.Handler,
        ctx: dict[str, Any],
        executor: Executor | None,
        *,
        log: logging.Logger,
        job_id: str,
    ) -> None:
        self.future = _start(handler, ctx, executor)
        #: Why this worker cancelled the handler, if it did.
        self.cancel_reason: str | None = None
        self._log = log
        self._job_id = job_id

    def done(self) -> bool:
        return self.future.done()

    def cancel(self, reason: str) -> None:
        self.cancel_reason = reason
        self.future.cancel()

    async def outcome(self) -> Outcome:
        """What the handler did. A cancellation that this worker did not ask for (the awaiting
        task itself is cancelled) propagates."""
        try:
            value = await self.future
            if inspect.isawaitable(value):  # a sync callable that returned a coroutine
                self.future = asyncio.ensure_future(value)
                value = await self.future
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self.cancel_reason is None or (current is not None and current.cancelling()):
                raise
            return Cancelled(reason=self.cancel_reason)
        except Exception as exc:
            self._log.debug("handler for job %s raised", self._job_id, exc_info=True)
            return failure(exc)
        return completion(value)


def _start(
    handler: _registry.Handler, ctx: dict[str, Any], executor: Executor | None
) -> asyncio.Future[Any]:
    if _registry.is_async_handler(handler):
        coroutine: Awaitable[Any] = handler(ctx)
        return asyncio.ensure_future(coroutine)
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, handler, ctx)
    return loop.run_in_executor(executor, call)


__all__ = [
    "Cancelled",
    "Completed",
    "Failed",
    "HandlerCall",
    "Outcome",
    "completion",
    "failure",
    "normalise_result",
]
