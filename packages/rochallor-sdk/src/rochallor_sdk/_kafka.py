"""The Kafka runner: the engine's ``kafka_outbox`` dispatch, consumed with the same
:class:`~rochallor_sdk.Registry` and handler contract as the polling :class:`Worker`.

One consumer per registered job type reads ``workflow.jobs.<jobType>`` in the consumer group
``workflow.workers.<jobType>``. Each fetched batch is handled concurrently (up to
``parallelism``); a record's offset is committed only once its completion (or failure) call
was accepted by the engine, so a worker that dies mid-job has its records redelivered
(at-least-once). Redeliveries are recognised by their ``dedup_id`` for ``dedup_window``
seconds (a bounded in-memory cache).

While handlers run, the consumer keeps polling with its partitions paused: that keeps its
group membership (the Kafka form of a lease) alive however long a handler takes, instead of
being expelled after ``max.poll.interval.ms`` and having the records redelivered elsewhere.
Completion and failure go through the worker's REST or gRPC client, as with polling.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, assert_never

import attrs

from rochallor_sdk import (
    _completions,
    _config,
    _errors,
    _lifecycle,
    _metrics,
    _outcome,
    _registry,
)
from rochallor_sdk._gen.workflow import v1 as pb
from rochallor_sdk._worker import COMPLETE_ATTEMPTS, COMPLETE_BACKOFF_MAX, backoff_delay
from rochallor_sdk.client import _base as client_base
from rochallor_sdk.client import create_client

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

logger = logging.getLogger("rochallor_sdk.kafka")

TOPIC_PREFIX = "workflow.jobs."
GROUP_PREFIX = "workflow.workers."
DEFAULT_DEDUP_WINDOW = 600.0
DEFAULT_DEDUP_SIZE = 100_000
#: While handlers run, the consumer polls (partitions paused) this often to stay in its group.
KEEP_ALIVE_INTERVAL = 1.0


class DedupCache:
    """``dedup_id``\\ s seen in the last ``window`` seconds, at most ``size`` of them (the
    oldest are forgotten first). An empty id is never remembered."""

    def __init__(
        self, window: float = DEFAULT_DEDUP_WINDOW, size: int = DEFAULT_DEDUP_SIZE
    ) -> None:
        if window <= 0 or size <= 0:
            raise _errors.ConfigurationError("dedup window and size must be positive")
        self.window = window
        self.size = size
        self._seen: collections.OrderedDict[str, float] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, dedup_id: str, now: float | None = None) -> bool:
        if not dedup_id:
            return False
        now = time.monotonic() if now is None else now
        self._expire(now)
        return dedup_id in self._seen

    def add(self, dedup_id: str, now: float | None = None) -> None:
        if not dedup_id:
            return
        now = time.monotonic() if now is None else now
        self._seen[dedup_id] = now + self.window
        self._seen.move_to_end(dedup_id)
        self._expire(now)
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)

    def _expire(self, now: float) -> None:
        while self._seen:
            oldest, expires = next(iter(self._seen.items()))
            if expires > now:
                return
            del self._seen[oldest]


@attrs.frozen(kw_only=True)
class DispatchEvent:
    """A decoded ``JobDispatchEvent``."""

    dedup_id: str
    job: client_base.Job


def decode_event(value: bytes) -> DispatchEvent:
    """Decode a record value; ``ValueError`` when it is not a usable ``JobDispatchEvent``."""
    try:
        message = pb.JobDispatchEvent.parse(value)
    except Exception as exc:  # betterproto raises assorted errors on garbage
        raise ValueError(f"not a JobDispatchEvent: {exc}") from exc
    if not message.job_id or not message.job_type:
        raise ValueError("JobDispatchEvent without job_id or job_type")
    try:
        variables = json.loads(message.job_payload or b"{}")
    except ValueError as exc:
        raise ValueError(f"job_payload is not JSON: {exc}") from exc
    if not isinstance(variables, dict):
        raise ValueError("job_payload is not a JSON object")
    job = client_base.Job(
        id=message.job_id,
        job_type=message.job_type,
        instance_id=message.instance_id,
        step_execution_id=message.step_execution_id,
        retries_remaining=max(message.retries_remaining, 0),
        variables=variables,
    )
    return DispatchEvent(dedup_id=message.dedup_id, job=job)


class KafkaWorker(_lifecycle.RunOnce):
    """Consumes the engine's job dispatches from Kafka and runs the registry's handlers.

    ``brokers``: ``host:port`` list (or comma-separated string) of the Kafka cluster. Engine
    settings (URL, transport, worker id, parallelism, shutdown timeout) as for
    :class:`~rochallor_sdk.Worker`. ``consumer_options`` are passed to every
    ``aiokafka.AIOKafkaConsumer`` (TLS/SASL settings, for instance).

    Lifecycle: :meth:`run` (blocking), ``await run_async()``, or ``async with``; :meth:`stop`
    ends fetching, lets in-flight handlers finish for ``shutdown_timeout`` seconds, commits
    what was reported and leaves the groups (unreported records go to another member).
    """

    def __init__(
        self,
        registry: _registry.Registry,
        *,
        brokers: str | Sequence[str],
        settings: _config.WorkerSettings | None = None,
        client: client_base.JobClient | None = None,
        metrics: _metrics.WorkerMetrics | None = None,
        engine_url: str | None = None,
        transport: _config.Transport | None = None,
        worker_id: str | None = None,
        parallelism: int | None = None,
        shutdown_timeout: float | None = None,
        dedup_window: float = DEFAULT_DEDUP_WINDOW,
        dedup_size: int = DEFAULT_DEDUP_SIZE,
        consumer_options: Mapping[str, Any] | None = None,
        handle_signals: bool = True,
    ) -> None:
        overrides: dict[str, Any] = {
            "engine_url": engine_url,
            "transport": transport,
            "worker_id": worker_id,
            "parallelism": parallelism,
            "shutdown_timeout": shutdown_timeout,
        }
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if settings is None:
            settings = _config.WorkerSettings.from_env(**overrides)
        else:
            settings = attrs.evolve(settings, **overrides)
        if isinstance(brokers, str):
            brokers = [b.strip() for b in brokers.split(",") if b.strip()]
        if not brokers:
            raise _errors.ConfigurationError("brokers: at least one host:port is required")
        self.settings = settings
        super().__init__(logger)
        self.registry = registry
        self.brokers = list(brokers)
        self.metrics = metrics if metrics is not None else _metrics.WorkerMetrics()
        self.dedup = DedupCache(dedup_window, dedup_size)
        self._client = client
        self._consumer_options = dict(consumer_options or {})
        self._handle_signals = handle_signals
        self._executor: ThreadPoolExecutor | None = None
        self._slots: asyncio.Semaphore | None = None
        self._completions: _completions.CompletionSender | None = None
        self._signals: list[signal.Signals] = []
        self._assigned: dict[str, asyncio.Event] = {}
        # dedup ids being handled now: a twin in flight waits for the first copy's outcome
        self._in_flight: dict[str, asyncio.Future[bool]] = {}
        #: Records handled (handler run and reported), skipped as duplicates, undecodable.
        self.handled = 0
        self.duplicates = 0
        self.undecodable = 0

    @property
    def worker_id(self) -> str:
        return self.settings.worker_id

    _task_name = "rochallor-kafka-worker"

    async def wait_assigned(self) -> None:
        """Until every job type's consumer has partitions assigned (start-up probes); call it
        once the worker runs."""
        if self._started is None:
            raise RuntimeError("the worker is not running")
        await self._started.wait()
        await asyncio.gather(*(e.wait() for e in self._assigned.values()))

    async def _main(self) -> None:
        assert self._started is not None and self._done is not None and self._stop is not None
        client = self._client
        owns_client = client is None
        if client is None:
            client = create_client(
                self.settings.engine_url,
                self.settings.transport,
                request_timeout=self.settings.request_timeout,
            )
        self._executor = ThreadPoolExecutor(
            max_workers=self.settings.parallelism, thread_name_prefix="rochallor-handler"
        )
        self._slots = asyncio.Semaphore(self.settings.parallelism)
        # Completions go out in groups, as with the polling worker.
        self._completions = _completions.CompletionSender(client, self.worker_id)
        self._completions.start()
        consumers: list[AIOKafkaConsumer] = []
        try:
            self._install_signal_handlers()
            for job_type in self.registry.job_types:
                # one by one, so that those started are stopped if a later one fails
                consumers.append(await self._consumer(job_type))  # noqa: PERF401
            logger.info(
                "kafka worker %s consuming %s from %s; completing over %s at %s",
                self.worker_id,
                ", ".join(TOPIC_PREFIX + t for t in self.registry.job_types),
                ",".join(self.brokers),
                self.settings.transport,
                self.settings.engine_url,
            )
            self._started.set()
            async with asyncio.TaskGroup() as group:
                for job_type, consumer in zip(self.registry.job_types, consumers, strict=True):
                    group.create_task(
                        self._consume(job_type, consumer, client),
                        name=f"rochallor-kafka-{job_type}",
                    )
        finally:
            for consumer in consumers:
                with contextlib.suppress(Exception):
                    await consumer.stop()
            await self._completions.close()
            self._remove_signal_handlers()
            self._executor.shutdown(wait=False, cancel_futures=True)
            if owns_client:
                await client.close()
            self._done.set()
            logger.info("kafka worker %s stopped", self.worker_id)

    async def _consumer(self, job_type: str) -> AIOKafkaConsumer:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.abc import ConsumerRebalanceListener

        assigned = self._assigned.setdefault(job_type, asyncio.Event())

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                assigned.clear()

            async def on_partitions_assigned(self, granted: Any) -> None:
                assigned.set()

        options: dict[str, Any] = {
            # aiokafka defaults differ from the other SDKs': auto-commit is on and a new group
            # starts at the end. Offsets are committed here after the engine accepted a report.
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "client_id": f"rochallor-{self.worker_id}",
            **self._consumer_options,
        }
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.brokers, group_id=GROUP_PREFIX + job_type, **options
        )
        consumer.subscribe([TOPIC_PREFIX + job_type], listener=Listener())
        await consumer.start()
        return consumer

    # --- consuming -----------------------------------------------------------------------

    async def _consume(
        self, job_type: str, consumer: AIOKafkaConsumer, client: client_base.JobClient
    ) -> None:
        assert self._stop is not None
        failures = 0
        while not self._stop.is_set():
            try:
                batches = await consumer.getmany(
                    timeout_ms=200, max_records=self.settings.parallelism
                )
            except Exception as exc:
                failures += 1
                delay = backoff_delay(
                    failures, self.settings.backoff_initial, self.settings.backoff_max
                )
                logger.warning("%s: fetch failed, retrying in %.2fs: %s", job_type, delay, exc)
                await asyncio.sleep(delay)
                continue
            failures = 0
            if not batches:
                continue
            await self._handle_batch(consumer, batches, client)

    async def _handle_batch(
        self,
        consumer: AIOKafkaConsumer,
        batches: Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
        client: client_base.JobClient,
    ) -> None:
        """Handle every record, keeping the group membership alive meanwhile; then commit
        each partition up to its first record whose report the engine did not accept."""
        # per record: True once it may be committed (reported), False/None otherwise
        reported: dict[TopicPartition, list[bool | None]] = {
            tp: [None] * len(records) for tp, records in batches.items()
        }
        work = asyncio.ensure_future(self._handle_all(batches, reported, client))
        timeout = self.settings.shutdown_timeout
        stop_deadline: float | None = None
        while True:
            done, _ = await asyncio.wait({work}, timeout=KEEP_ALIVE_INTERVAL)
            if done:
                break
            # Still busy: poll with every partition paused, which fetches nothing but tells
            # the group this member is alive (max.poll.interval.ms).
            assignment = consumer.assignment()
            if assignment:
                consumer.pause(*assignment)
            try:
                await consumer.getmany(timeout_ms=0)
            except Exception as exc:
                logger.debug("keep-alive poll failed: %s", exc)
            if self.stopping and stop_deadline is None:
                stop_deadline = time.monotonic() + timeout
            if stop_deadline is not None and time.monotonic() > stop_deadline:
                logger.warning(
                    "in-flight jobs unfinished after the %.1fs shutdown timeout", timeout
                )
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
                break
        if not work.cancelled() and work.exception() is not None:
            logger.error("handling a batch failed", exc_info=work.exception())
        consumer.resume(*consumer.assignment())
        offsets: dict[TopicPartition, int] = {}
        for tp, records in batches.items():
            commit_to: int | None = None
            for record, ok in zip(records, reported[tp], strict=True):
                if not ok:
                    break
                commit_to = record.offset + 1
            if commit_to is not None:
                offsets[tp] = commit_to
            if commit_to is None or commit_to <= records[-1].offset:
                # a report failed: this record (and those after it) come again
                first_unreported = records[0].offset if commit_to is None else commit_to
                with contextlib.suppress(Exception):
                    consumer.seek(tp, first_unreported)
        if offsets:
            try:
                await consumer.commit(offsets)
            except Exception as exc:
                # e.g. a rebalance took the partition away: its new owner gets the records
                # again, and the engine treats a repeated completion as a no-op.
                logger.warning("offset commit failed (records will be redelivered): %s", exc)

    async def _handle_all(
        self,
        batches: Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
        reported: dict[TopicPartition, list[bool | None]],
        client: client_base.JobClient,
    ) -> None:
        """Handle every record concurrently, noting each outcome in ``reported`` as it comes
        (a shutdown that cancels the rest still commits what was reported)."""

        async def one(tp: TopicPartition, index: int, record: ConsumerRecord[bytes, bytes]) -> None:
            reported[tp][index] = await self._handle_record(record, client)

        await asyncio.gather(
            *(one(tp, i, r) for tp, records in batches.items() for i, r in enumerate(records))
        )

    async def _handle_record(
        self, record: ConsumerRecord[bytes, bytes], client: client_base.JobClient
    ) -> bool:
        """``True`` when the record may be committed: reported, a duplicate or undecodable."""
        try:
            dispatched = decode_event(record.value or b"")
        except ValueError as exc:
            self.undecodable += 1
            logger.error(
                "%s[%d]@%d skipped: %s", record.topic, record.partition, record.offset, exc
            )
            return True
        dedup_id = dispatched.dedup_id
        twin = self._in_flight.get(dedup_id) if dedup_id else None
        if twin is not None and await asyncio.shield(twin):
            self.duplicates += 1
            return True
        if self.dedup.seen(dedup_id):
            self.duplicates += 1
            logger.info("job %s: duplicate dispatch %s skipped", dispatched.job.id, dedup_id)
            return True
        outcome: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if dedup_id:
            self._in_flight[dedup_id] = outcome
        reported = False
        try:
            assert self._slots is not None
            async with self._slots:
                reported = await self._run_job(dispatched.job, client)
            if reported:
                self.dedup.add(dedup_id)
                self.handled += 1
        finally:
            outcome.set_result(reported)
            if self._in_flight.get(dedup_id) is outcome:
                del self._in_flight[dedup_id]
        return reported

    async def _run_job(self, job: client_base.Job, client: client_base.JobClient) -> bool:
        handler = self.registry.get(job.job_type)
        if handler is None:
            logger.error("job %s: no handler for job type %r", job.id, job.job_type)
            return await self._fail(job, f"no handler for job type {job.job_type}", False, client)
        ctx = job.to_context()
        ctx["leaseLost"] = threading.Event()
        self.metrics.jobs_started.labels(job.job_type).inc()
        self.metrics.in_flight.inc()
        started = time.monotonic()
        try:
            call = _outcome.HandlerCall(handler, ctx, self._executor, log=logger, job_id=job.id)
            outcome = await call.outcome()
        finally:
            self.metrics.in_flight.dec()
            self.metrics.handler_duration.labels(job.job_type).observe(time.monotonic() - started)
        match outcome:
            case _outcome.Completed(variables=variables):
                return await self._complete(job, variables)
            case _outcome.Failed(message=message, retryable=retryable):
                return await self._fail(job, message, retryable, client)
            case _outcome.Cancelled():  # pragma: no cover - this runner cancels only by shutdown
                return False  # not reported: the record comes again
            case _:
                assert_never(outcome)

    async def _complete(self, job: client_base.Job, variables: dict[str, Any]) -> bool:
        """Through the completion sender (grouped calls); retried on transport errors."""
        assert self._completions is not None
        for attempt in range(1, COMPLETE_ATTEMPTS + 1):
            exc = await self._completions.complete(job.id, variables)
            if exc is None:
                self.metrics.jobs_completed.labels(job.job_type).inc()
                return True
            if attempt < COMPLETE_ATTEMPTS and _completions.worth_retrying(exc):
                delay = backoff_delay(attempt, self.settings.backoff_initial, COMPLETE_BACKOFF_MAX)
                await asyncio.sleep(delay)
                continue
            self.metrics.report_errors.labels("complete").inc()
            logger.error("job %s: completion not accepted: %s", job.id, exc)
            return False
        return False  # pragma: no cover - the loop always returns

    async def _fail(
        self, job: client_base.Job, message: str, retryable: bool, client: client_base.JobClient
    ) -> bool:
        self.metrics.jobs_failed.labels(job.job_type, "true" if retryable else "false").inc()
        (logger.info if retryable else logger.warning)(
            "job %s (%s) failed (retryable=%s): %s", job.id, job.job_type, retryable, message
        )
        try:
            await client.fail(
                job.id, worker_id=self.worker_id, error_message=message, retryable=retryable
            )
        except (_errors.TransportError, _errors.ApiError) as exc:
            # Not repeated (a replayed retryable failure would be charged twice); the record
            # is not committed, so it comes again.
            self.metrics.report_errors.labels("fail").inc()
            logger.error("job %s: failure not accepted: %s", job.id, exc)
            return False
        return True

    # --- signals -------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        if not self._handle_signals or threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.request_stop)
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            self._signals.append(sig)

    def _remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        self._signals.clear()


__all__ = ["DedupCache", "DispatchEvent", "KafkaWorker", "decode_event"]
