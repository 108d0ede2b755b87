"""The one run/stop/drain lifecycle of the SDK's workers (polling and Kafka).

A worker runs once: :meth:`RunOnce.run` (blocking) or :meth:`RunOnce.run_async`, or as an async
context manager; :meth:`RunOnce.request_stop` ends its intake and :meth:`RunOnce.stop` waits
until the in-flight jobs drained. Subclasses provide ``_main`` (which sets ``_started`` once it
listens and ``_done`` at its very end) and may hook ``_on_stop_requested``.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Self

from rochallor_sdk import _errors, _registry


class RunOnce:
    registry: _registry.Registry
    _task_name = "rochallor-worker"

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._stop: asyncio.Event | None = None
        self._started: asyncio.Event | None = None
        self._done: asyncio.Event | None = None
        self._background: asyncio.Task[None] | None = None
        self._has_run = False

    @property
    def worker_id(self) -> str:
        raise NotImplementedError

    @property
    def stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    async def _main(self) -> None:
        raise NotImplementedError

    def _on_start(self) -> None:
        """Called in :meth:`run_async` before ``_main`` starts (on the worker's loop)."""

    def _on_stop_requested(self) -> None:
        """Called once when a stop is requested, after ``_stop`` is set."""

    def run(self) -> None:
        """Run until SIGINT/SIGTERM (or :meth:`stop`), blocking the calling thread."""
        asyncio.run(self.run_async())

    async def run_async(self) -> None:
        """Run in the current event loop until stopped.

        Cancelling the caller is turned into a graceful :meth:`stop` (the drain runs to its end)
        and the cancellation is then re-raised.
        """
        if self._has_run:
            raise RuntimeError(f"a {type(self).__name__} runs once; create a new one")
        if len(self.registry) == 0:
            raise _errors.ConfigurationError("the registry has no handlers")
        self._has_run = True
        self._stop = asyncio.Event()
        self._started = asyncio.Event()
        self._done = asyncio.Event()
        self._on_start()
        main = asyncio.create_task(self._main(), name=self._task_name)
        try:
            await asyncio.shield(main)
        except asyncio.CancelledError:
            self.request_stop()
            await main
            raise

    def request_stop(self) -> None:
        """Ask the worker to stop without waiting. Call it on the worker's event-loop thread
        (from another thread: ``loop.call_soon_threadsafe(worker.request_stop)``)."""
        if self._stop is not None and not self._stop.is_set():
            self._logger.info("%s stopping: intake ends, in-flight jobs drain", self.worker_id)
            self._stop.set()
            self._on_stop_requested()

    async def stop(self) -> None:
        """Stop and wait until the worker has drained and closed its resources."""
        self.request_stop()
        if self._done is not None:
            await self._done.wait()

    async def __aenter__(self) -> Self:
        self._background = asyncio.create_task(self.run_async(), name=f"{self._task_name}-run")
        # Wait until the worker listens, or surface its start-up error.
        while self._started is None:
            if self._background.done():
                break
            await asyncio.sleep(0)
        if self._started is not None:
            started = asyncio.create_task(self._started.wait())
            await asyncio.wait({started, self._background}, return_when=asyncio.FIRST_COMPLETED)
            started.cancel()
        if self._background.done():
            self._background.result()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
        if self._background is not None:
            await self._background
