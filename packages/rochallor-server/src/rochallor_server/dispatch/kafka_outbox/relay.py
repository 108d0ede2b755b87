"""The outbox relay (``kafka-dispatch.md`` §5): one leader across replicas drains
``dispatch_outbox`` to Kafka, in order, in batches, at least once.

Leadership is a PostgreSQL session advisory lock held on a dedicated connection. The drain
loop's own queries check that session (it queries at least every 250 ms, idle or not), each
with a deadline: a failed or stuck query means the session, and so the lock, may be gone, and
the relay steps down, drops the connection and competes for the lock again.

A job type whose topic fails (missing, or the broker is down) is held back for a second while
the other job types flow; its rows, and the rows queued behind them for the same instances,
stay in the outbox. Rows are deleted only after the broker acknowledged them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError

from rochallor_server.dispatch.kafka_outbox import event
from rochallor_server.metrics import Metrics
from rochallor_server.service.ports import OutboxLeadership, OutboxRow, OutboxStore

log = logging.getLogger(__name__)

RELAY_LOCK_KEY = 4893219751932018491
"""The reference engine's key: its replicas and ours never relay concurrently."""
IDLE_SLEEP = 0.25
HOLD_SECONDS = 1.0
"""A job type whose publish failed is retried after this long."""
WAKE_LINGER = 0.02
METADATA_WAIT = 2.0
PUBLISH_WAIT = 10.0
"""Acknowledgements not in after this long fail the cycle (the client keeps retrying those
records on its own: they may still arrive, as duplicates of the republished rows)."""
CYCLE_DEADLINE = 30.0
"""A drain cycle (database and broker) taking longer means something is stuck: step down."""


class _LeadershipLost(Exception):
    pass


class OutboxRelay:
    """``start()`` / ``stop()``; runs the leader election and, while leader, the drain loop."""

    def __init__(
        self,
        store: OutboxStore,
        producer: AIOKafkaProducer,
        *,
        metrics: Metrics,
        batch_size: int,
        audit: bool,
        leader_interval: float = 5.0,
    ) -> None:
        self._store = store
        self._producer = producer
        self._metrics = metrics
        self._batch_size = batch_size
        self._audit = audit
        self._interval = leader_interval
        self._stopping = asyncio.Event()
        self._woken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._held: dict[str, float] = {}
        self._sampled_at = 0.0
        self.leading = False

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="outbox-relay")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop after the current batch (cancelled after ``grace``), then unlock."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=grace)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        """Rows were just written by this process: look now rather than after the idle sleep
        (rows of other replicas are found by the idle cycle)."""
        self._woken.set()

    async def _pause(self, seconds: float, *, wakeable: bool = False) -> None:
        waits = {asyncio.ensure_future(self._stopping.wait())}
        if wakeable:
            waits.add(asyncio.ensure_future(self._woken.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    async def run(self) -> None:
        # one random initial delay, so that replicas starting together do not collide
        await self._pause(random.uniform(0, self._interval / 4))
        while not self._stopping.is_set():
            try:
                lead = await self._store.lead_outbox(RELAY_LOCK_KEY)
            except Exception as exc:
                log.warning("relay: cannot try the relay lock: %s", exc)
                lead = None
            if lead is None:
                await self._pause(self._interval)
                continue
            log.info("relay: leader; publishing the dispatch outbox")
            self.leading = True
            self._metrics.relay_leader.set(1)
            try:
                await self._lead(lead)
            except _LeadershipLost as exc:
                log.warning("relay: leadership lost (%s); stepping down", exc.__cause__ or exc)
            finally:
                self.leading = False
                self._metrics.relay_leader.set(0)
                await lead.release()

    async def _lead(self, lead: OutboxLeadership) -> None:
        while not self._stopping.is_set():
            try:
                async with asyncio.timeout(CYCLE_DEADLINE):
                    published = await self._cycle(lead)
                    if published == 0 or time.monotonic() - self._sampled_at > 1.0:
                        await self._sample(lead)
            except Exception as exc:  # the database (the broker's errors stay in _publish)
                raise _LeadershipLost(str(exc)) from exc
            if published == 0:
                await self._pause(IDLE_SLEEP, wakeable=not self._held)
                if self._woken.is_set():
                    # linger a little: rows written together leave in one batch
                    await self._pause(WAKE_LINGER)

    async def _sample(self, lead: OutboxLeadership) -> None:
        backlog, oldest = await lead.backlog()
        self._metrics.outbox_backlog.set(backlog)
        lag = 0.0
        if oldest is not None:
            lag = max(time.time() - oldest.timestamp(), 0.0)
        self._metrics.relay_lag.set(lag)
        self._sampled_at = time.monotonic()

    async def _cycle(self, lead: OutboxLeadership) -> int:
        """One drain cycle; the number of rows published (0: idle, or nothing could be)."""
        started = time.perf_counter()
        now = time.monotonic()
        self._held = {t: until for t, until in self._held.items() if until > now}
        self._woken.clear()
        async with lead.batch() as batch:
            rows = await batch.rows(held_job_types=sorted(self._held), limit=self._batch_size)
            if not rows:
                return 0
            published = await self._publish(rows)
            await batch.published(published, audit=self._audit)
        self._metrics.relay_batch_latency.observe(time.perf_counter() - started)
        return len(published)

    async def _publish(self, rows: Sequence[OutboxRow]) -> list[OutboxRow]:
        """Produce every row; the rows to forget: acknowledged, of a job type without errors."""
        failed: dict[str, str] = {}
        job_types = sorted({row.job_type for row in rows})
        # every topic's metadata at once: a few missing topics cost one wait, not one each
        checks = await asyncio.gather(
            *(
                asyncio.wait_for(self._producer.partitions_for(event.topic_for(t)), METADATA_WAIT)
                for t in job_types
            ),
            return_exceptions=True,
        )
        for job_type, check in zip(job_types, checks, strict=True):
            if isinstance(check, KafkaError | TimeoutError):
                topic = event.topic_for(job_type)
                failed[job_type] = f"topic {topic} unavailable ({type(check).__name__})"
            elif isinstance(check, BaseException):
                raise check
        sends: list[tuple[OutboxRow, asyncio.Future[object]]] = []
        for row in rows:
            if row.job_type in failed:
                continue
            try:
                delivery = await self._producer.send(
                    event.topic_for(row.job_type),
                    row.payload,
                    key=row.instance_id.encode(),
                    headers=event.headers(row.id),
                )
            except KafkaError as exc:
                failed.setdefault(row.job_type, str(exc) or type(exc).__name__)
                continue
            sends.append((row, delivery))
        if sends:
            await asyncio.wait([d for _, d in sends], timeout=PUBLISH_WAIT)
        for row, delivery in sends:
            if not delivery.done():
                failed.setdefault(row.job_type, f"no acknowledgement within {PUBLISH_WAIT}s")
                self._metrics.producer_errors.labels("context").inc()
                continue
            error = delivery.exception()
            if error is not None:
                failed.setdefault(row.job_type, str(error) or type(error).__name__)
                timed_out = isinstance(error, TimeoutError | KafkaTimeoutError)
                self._metrics.producer_errors.labels("context" if timed_out else "client").inc()
        published = [row for row, _ in sends if row.job_type not in failed]
        kept = len(rows) - len(published)
        if published:
            self._metrics.relay_publish.labels("success").inc(len(published))
        if kept:
            self._metrics.relay_publish.labels("error").inc(kept)
            hold_until = time.monotonic() + HOLD_SECONDS
            for job_type, reason in failed.items():
                self._held[job_type] = hold_until
                log.warning("relay: publishing %s failed, kept for a retry: %s", job_type, reason)
        return published
