"""The worker: poll loop, bounded concurrency, lease keeping, batched completions, graceful
shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import logging
import random
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, assert_never

import attrs
from aiohttp import web

from rochallor_sdk import (
    _completions,
    _config,
    _errors,
    _lifecycle,
    _metrics,
    _outcome,
    _registry,
)
from rochallor_sdk.client import _base as client_base
from rochallor_sdk.client import create_client

logger = logging.getLogger("rochallor_sdk.worker")

T = TypeVar("T")

#: Extend a lease once this fraction of it is left.
LEASE_RENEW_FRACTION = 1 / 3
#: Lease assumed when the engine's ``lockExpiresAt`` is already past on arrival (clock skew).
FALLBACK_LEASE_SECONDS = 30.0
#: Attempts to report a completion (idempotent on the engine, so safe to repeat) at least;
#: while the engine answers "unavailable" (a database outage) or cannot be reached, the
#: completion is kept and retried until the job's lease ends, so that an outage shorter
#: than the lease costs no redelivery.
COMPLETE_ATTEMPTS = 3
#: Longest pause between two attempts to report a completion.
COMPLETE_BACKOFF_MAX = 5.0


def backoff_delay(
    attempt: int,
    initial: float,
    maximum: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """Delay before retry ``attempt`` (1-based): ``initial * 2**(attempt-1)`` capped at
    ``maximum``, then scaled by a random factor in [0.5, 1) so that a fleet of workers does
    not retry in lock-step, while never dropping below half the nominal delay."""
    nominal = min(maximum, initial * 2.0 ** min(max(attempt - 1, 0), 32))
    return nominal * (0.5 + rand() / 2)


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@attrs.define(eq=False)
class _JobRun:
    """Book-keeping for one job between poll and report."""

    job: client_base.Job
    lease_lost: threading.Event = attrs.field(factory=threading.Event)
    is_async: bool = False
    call: _outcome.HandlerCall | None = None
    lost: bool = False
    released: bool = False
    lease_extensions: int = 0
    #: The latest lease end the engine gave (on claim, then on each extension).
    lease_ends: datetime.datetime | None = None


class Worker(_lifecycle.RunOnce):
    """Polls the engine for the registry's job types and runs their handlers.

    Settings come from ``settings`` or else ``WorkerSettings.from_env()``; the keyword
    arguments override single fields. ``client`` replaces the transport named by the
    settings (the worker then does not close it).

    Lifecycle: :meth:`run` (blocking), ``await run_async()``, or ``async with Worker(...)``
    (runs in the background until the block ends). :meth:`stop` stops polling, lets
    in-flight jobs finish for ``shutdown_timeout`` seconds, then hands the rest back.
    """

    def __init__(
        self,
        registry: _registry.Registry,
        *,
        settings: _config.WorkerSettings | None = None,
        client: client_base.JobClient | None = None,
        metrics: _metrics.WorkerMetrics | None = None,
        engine_url: str | None = None,
        transport: _config.Transport | None = None,
        worker_id: str | None = None,
        parallelism: int | None = None,
        poll_interval: float | None = None,
        shutdown_timeout: float | None = None,
        metrics_port: int | None = None,
        handle_signals: bool = True,
    ) -> None:
        overrides: dict[str, Any] = {
            "engine_url": engine_url,
            "transport": transport,
            "worker_id": worker_id,
            "parallelism": parallelism,
            "poll_interval": poll_interval,
            "shutdown_timeout": shutdown_timeout,
            "metrics_port": metrics_port,
        }
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if settings is None:
            settings = _config.WorkerSettings.from_env(**overrides)
        else:
            settings = attrs.evolve(settings, **overrides)
        self.settings = settings
        super().__init__(logger)
        self.registry = registry
        self.metrics = metrics if metrics is not None else _metrics.WorkerMetrics()
        self._client = client
        self._handle_signals = handle_signals
        self._runs: set[_JobRun] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wakeup: asyncio.Event | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._completions: _completions.CompletionSender | None = None
        self._metrics_runner: web.AppRunner | None = None
        self._signals: list[signal.Signals] = []
        #: Port of the metrics HTTP server once it listens (useful with ``metrics_port=0``).
        self.metrics_bound_port: int | None = None

    @property
    def worker_id(self) -> str:
        return self.settings.worker_id

    @property
    def in_flight(self) -> int:
        """Jobs currently held by this worker."""
        return len(self._runs)

    _task_name = "rochallor-worker"

    def _on_start(self) -> None:
        self._wakeup = asyncio.Event()

    def _on_stop_requested(self) -> None:
        assert self._wakeup is not None
        self._wakeup.set()

    async def _main(self) -> None:
        assert self._started is not None and self._done is not None
        client = self._client
        owns_client = client is None
        if client is None:
            client = create_client(
                self.settings.engine_url,
                self.settings.transport,
                request_timeout=self.settings.request_timeout,
                token=self.settings.token,
                tls=self.settings.tls_context(),
            )
        self._executor = ThreadPoolExecutor(
            max_workers=self.settings.parallelism, thread_name_prefix="rochallor-handler"
        )
        # Completions go out in groups; the sender outlives the drain, so that what the
        # draining jobs complete is still sent.
        self._completions = _completions.CompletionSender(client, self.worker_id)
        self._completions.start()
        try:
            self._install_signal_handlers()
            if self.settings.metrics_port is not None:
                await self._start_metrics_server(self.settings.metrics_port)
            logger.info(
                "worker %s polling %s over %s for %s (parallelism %d)",
                self.worker_id,
                self.settings.engine_url,
                self.settings.transport,
                ", ".join(self.registry.job_types),
                self.settings.parallelism,
            )
            self._started.set()
            await self._poll_loop(client)
        finally:
            try:
                await self._drain()
            finally:
                await self._completions.close()
                self._remove_signal_handlers()
                # Threads still running a sync handler cannot be killed; they finish alone.
                self._executor.shutdown(wait=False, cancel_futures=True)
                if self._metrics_runner is not None:
                    await self._metrics_runner.cleanup()
                if owns_client:
                    await client.close()
                self._done.set()
                logger.info("worker %s stopped", self.worker_id)

    # --- polling -------------------------------------------------------------------------

    async def _poll_loop(self, client: client_base.JobClient) -> None:
        assert self._stop is not None and self._wakeup is not None
        failures = 0
        job_types = self.registry.job_types
        while not self._stop.is_set():
            free = self.settings.parallelism - len(self._runs)
            if free <= 0:
                # Woken by a finishing job or by stop().
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            started = time.monotonic()
            try:
                jobs = await self._until_stopped(
                    client.poll(
                        worker_id=self.worker_id,
                        job_types=job_types,
                        max_jobs=free,
                        wait=self.settings.long_poll_wait,
                    )
                )
            except Exception as exc:
                failures += 1
                self.metrics.polls.labels("error").inc()
                delay = backoff_delay(
                    failures, self.settings.backoff_initial, self.settings.backoff_max
                )
                logger.warning(
                    "poll failed (%d in a row), retrying in %.2fs: %s", failures, delay, exc
                )
                await self._sleep(delay)
                continue
            self.metrics.poll_duration.observe(time.monotonic() - started)
            if jobs is None:  # stopped while polling
                break
            failures = 0
            self.metrics.polls.labels("jobs" if jobs else "empty").inc()
            for job in jobs:
                self._start(job, client)
            if not jobs:
                # A long poll that waited needs no pause; an engine that ignores waitMs
                # answers at once, and then we wait poll_interval.
                await self._sleep(self.settings.poll_interval - (time.monotonic() - started))

    async def _until_stopped(self, awaitable: Awaitable[T]) -> T | None:
        """Await ``awaitable``, or cancel it and return ``None`` when stop() comes first."""
        assert self._stop is not None
        task = asyncio.ensure_future(awaitable)
        stop = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            raise
        finally:
            stop.cancel()
        if task.done():
            return task.result()
        # Jobs a cancelled poll may have claimed come back after their lease expires.
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        return None

    async def _sleep(self, delay: float) -> None:
        """Sleep ``delay`` seconds, or less if stop() is requested."""
        assert self._stop is not None
        if delay <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)

    # --- one job -------------------------------------------------------------------------

    def _start(self, job: client_base.Job, client: client_base.JobClient) -> None:
        handler = self.registry.get(job.job_type)
        if handler is None:
            logger.error(
                "engine sent job %s of unregistered type %r; leaving it to lease expiry",
                job.id,
                job.job_type,
            )
            return
        run = _JobRun(job=job, is_async=_registry.is_async_handler(handler))
        self._runs.add(run)
        task = asyncio.create_task(
            self._execute(run, handler, client), name=f"rochallor-job-{job.id}"
        )
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._job_done, run))

    def _job_done(self, run: _JobRun, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._runs.discard(run)
        if self._wakeup is not None:
            self._wakeup.set()
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "internal error while running job %s",
                run.job.id,
                exc_info=task.exception(),
            )

    async def _execute(
        self, run: _JobRun, handler: _registry.Handler, client: client_base.JobClient
    ) -> None:
        job = run.job
        ctx = job.to_context()
        ctx["leaseLost"] = run.lease_lost
        self.metrics.jobs_started.labels(job.job_type).inc()
        self.metrics.in_flight.inc()
        started = time.monotonic()
        run.call = _outcome.HandlerCall(handler, ctx, self._executor, log=logger, job_id=job.id)
        keeper = asyncio.create_task(
            self._keep_lease(run, client), name=f"rochallor-lease-{job.id}"
        )
        try:
            outcome = await run.call.outcome()
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            self.metrics.handler_duration.labels(job.job_type).observe(time.monotonic() - started)
            self.metrics.in_flight.dec()
        await self._report(run, outcome, client)

    async def _report(
        self, run: _JobRun, outcome: _outcome.Outcome, client: client_base.JobClient
    ) -> None:
        job = run.job
        where = f"job {job.id} ({job.job_type})"
        match outcome:
            case _outcome.Completed(variables=variables):
                if run.lost:
                    logger.warning(
                        "%s: lease lost, reporting the late completion anyway "
                        "(the engine keeps the first completion)",
                        where,
                    )
                elif run.released:
                    logger.warning("%s: finished after it was handed back; reporting it", where)
                if await self._report_complete(run, variables):
                    self.metrics.jobs_completed.labels(job.job_type).inc()
            case _outcome.Cancelled(reason=reason):
                if run.released:
                    await self._hand_back(run, client)
                else:
                    logger.warning(
                        "%s: handler cancelled (%s); not reported, the engine re-offers the "
                        "job once the lease has expired",
                        where,
                        reason,
                    )
            case _outcome.Failed(message=message, retryable=retryable):
                if run.lost and retryable:
                    logger.warning(
                        "%s: lease lost and the handler failed (%s); not reported, so that no "
                        "retry is charged for an attempt the engine already gave up on",
                        where,
                        message,
                    )
                    return
                if run.lost:
                    logger.warning(
                        "%s: lease lost; reporting the non-retryable failure anyway", where
                    )
                self.metrics.jobs_failed.labels(
                    job.job_type, "true" if retryable else "false"
                ).inc()
                log = logger.info if retryable else logger.warning
                log("%s failed (retryable=%s): %s", where, retryable, message)
                await self._report_fail(run, message, retryable, client)
            case _:
                assert_never(outcome)

    async def _report_complete(self, run: _JobRun, variables: dict[str, Any]) -> bool:
        """Send the completion (batched with others, see ``CompletionSender``), retrying
        transport and server-side errors with backoff and jitter: at least
        ``COMPLETE_ATTEMPTS`` times, and on until the job's lease ends (after it, the engine
        offers the job again anyway); completion is idempotent on the engine."""
        assert self._completions is not None
        lease_ends = run.lease_ends or run.job.lock_expires_at
        attempt = 0
        while True:
            attempt += 1
            exc = await self._completions.complete(run.job.id, variables)
            if exc is None:
                return True
            retry = _completions.worth_retrying(exc)
            delay = backoff_delay(attempt, self.settings.backoff_initial, COMPLETE_BACKOFF_MAX)
            left = 0.0 if lease_ends is None else (lease_ends - _utcnow()).total_seconds()
            if retry and (attempt < COMPLETE_ATTEMPTS or delay < left):
                if attempt == COMPLETE_ATTEMPTS:
                    logger.warning(
                        "job %s: completion not accepted yet (%s); keeping it for the %.0fs "
                        "left of its lease",
                        run.job.id,
                        exc,
                        left,
                    )
                await asyncio.sleep(delay)
                continue
            self.metrics.report_errors.labels("complete").inc()
            logger.error("job %s: completion not accepted: %s", run.job.id, exc)
            return False

    async def _report_fail(
        self, run: _JobRun, message: str, retryable: bool, client: client_base.JobClient
    ) -> None:
        # Sent once: a replayed retryable failure would be charged twice if the first one
        # reached the engine. If this one is lost, the lease expires and the job comes back.
        try:
            await client.fail(
                run.job.id, worker_id=self.worker_id, error_message=message, retryable=retryable
            )
        except (_errors.TransportError, _errors.ApiError) as exc:
            self.metrics.report_errors.labels("fail").inc()
            logger.error("job %s: failure not accepted: %s", run.job.id, exc)

    async def _hand_back(self, run: _JobRun, client: client_base.JobClient) -> None:
        job = run.job
        if job.retries_remaining <= 0:
            # A retryable failure with no retry left fails the instance (semantics §8.6);
            # letting the lease expire re-offers the job without charging a retry.
            logger.warning(
                "job %s (%s): unfinished at shutdown and no retry left; not failed, the engine "
                "re-offers it when the lease expires",
                job.id,
                job.job_type,
            )
            return
        logger.warning(
            "job %s (%s): unfinished after the %.1fs shutdown timeout; failing it as retryable",
            job.id,
            job.job_type,
            self.settings.shutdown_timeout,
        )
        self.metrics.jobs_failed.labels(job.job_type, "true").inc()
        await self._report_fail(
            run,
            f"worker {self.worker_id} shut down before the handler finished",
            True,
            client,
        )

    # --- leases --------------------------------------------------------------------------

    async def _keep_lease(self, run: _JobRun, client: client_base.JobClient) -> None:
        expires = run.job.lock_expires_at
        if expires is None:
            return  # the engine gave no lease end; nothing to keep
        lease = (expires - _utcnow()).total_seconds()
        if lease <= 0:
            lease = FALLBACK_LEASE_SECONDS
            expires = _utcnow() + datetime.timedelta(seconds=lease)
        next_try = expires - datetime.timedelta(seconds=lease * LEASE_RENEW_FRACTION)
        while True:
            await asyncio.sleep(max((next_try - _utcnow()).total_seconds(), 0.0))
            try:
                new_expires = await client.extend_lease(run.job.id, self.worker_id)
            except _errors.LeaseLost as exc:
                self.metrics.lease_extensions.labels("lost").inc()
                self._lose(run, f"extension refused: {exc.message}")
                return
            except (_errors.TransportError, _errors.ApiError) as exc:
                self.metrics.lease_extensions.labels("error").inc()
                remaining = (expires - _utcnow()).total_seconds()
                if remaining <= 0:
                    self._lose(run, f"lease expired, last extension error: {exc}")
                    return
                logger.info("job %s: lease extension failed, retrying: %s", run.job.id, exc)
                gap = min(remaining, max(lease / 10, 0.05))
                next_try = _utcnow() + datetime.timedelta(seconds=gap)
                continue
            self.metrics.lease_extensions.labels("ok").inc()
            run.lease_extensions += 1
            expires = run.lease_ends = new_expires
            lease = max((expires - _utcnow()).total_seconds(), 0.0)
            if lease <= 0:
                self._lose(run, "extension returned a lease end in the past")
                return
            next_try = expires - datetime.timedelta(seconds=lease * LEASE_RENEW_FRACTION)

    def _lose(self, run: _JobRun, reason: str) -> None:
        if run.lost or run.call is None or run.call.done():
            return
        run.lost = True
        run.lease_lost.set()
        self.metrics.leases_lost.labels(run.job.job_type).inc()
        logger.warning(
            "job %s (%s): lease lost (%s); %s",
            run.job.id,
            run.job.job_type,
            reason,
            "cancelling the handler" if run.is_async else "leaseLost flag set for the handler",
        )
        if run.is_async:
            run.call.cancel(f"lease lost: {reason}")

    # --- shutdown ------------------------------------------------------------------------

    async def _drain(self) -> None:
        pending = set(self._tasks)
        if not pending:
            return
        timeout = self.settings.shutdown_timeout
        logger.info("waiting up to %.1fs for %d in-flight job(s)", timeout, len(pending))
        _, pending = await asyncio.wait(pending, timeout=timeout)
        if not pending:
            return
        for run in list(self._runs):
            if run.call is not None and not run.call.done():
                run.released = True
                run.lease_lost.set()
                run.call.cancel("worker shutdown timeout")
        # Give the hand-back reports time to reach the engine, then give up on them.
        _, pending = await asyncio.wait(pending, timeout=self.settings.request_timeout + 1)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # --- signals and metrics server -------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        if not self._handle_signals or threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError):  # e.g. Windows
                continue
            self._signals.append(sig)

    def _remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        self._signals.clear()

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.stopping:
            logger.warning("%s received again; still draining in-flight jobs", sig.name)
            return
        logger.info("%s received", sig.name)
        self.request_stop()

    async def _start_metrics_server(self, port: int) -> None:
        app = web.Application()

        async def metrics_handler(_request: web.Request) -> web.Response:
            return web.Response(
                body=self.metrics.exposition(),
                headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
            )

        async def health_handler(_request: web.Request) -> web.Response:
            if self.stopping:
                return web.Response(status=503, text="stopping")
            return web.Response(text="ok")

        app.router.add_get("/metrics", metrics_handler)
        app.router.add_get("/healthz", health_handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host=self.settings.metrics_host, port=port)
        await site.start()
        self._metrics_runner = runner
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                self.metrics_bound_port = int(address[1])
                break


__all__ = ["Worker", "backoff_delay"]
