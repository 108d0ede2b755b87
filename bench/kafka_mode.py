"""Scenario 6: ``kafka_outbox`` dispatch against a real one-node broker, figures named like the
polling ones with a ``_kafka`` suffix: pickup latency (job created → handler starts, through
outbox, relay, broker and the SDK ``KafkaWorker``) and single-step throughput.

The broker is started by ``rochallor_server.testing.kafka_broker`` (Java 17 + Maven).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

import e2e
from harness import BenchSettings, Database, connect, figure, note

from rochallor_sdk import KafkaWorker, Registry, RestClient, WorkerSettings
from rochallor_server import testing
from rochallor_server.testing.kafka_broker import KafkaBroker, create_topics

LATENCY_TYPE = "bench-latency-kafka"
SINGLE_TYPE = "bench-single-kafka"


class KafkaLoad(e2e.Load):
    """The scenarios' load, with Kafka workers instead of polling workers."""

    bootstrap = ""

    def workers(  # type: ignore[override]
        self, registry: Registry, *, transport: str = "rest", long_poll: bool = True
    ) -> list[KafkaWorker]:
        s = self.settings
        config = WorkerSettings(
            engine_url=self.engine.rest_url, parallelism=s.parallelism, shutdown_timeout=5.0
        )
        return [
            KafkaWorker(
                registry,
                brokers=self.bootstrap,
                settings=config,
                worker_id=f"bench-kafka-{i}",
                handle_signals=False,
                # members learn of a rebalance at their next heartbeat: joining workers settle
                # within the warm-up instead of stalling the group for seconds
                consumer_options={"heartbeat_interval_ms": 300},
            )
            for i in range(s.workers)
        ]


async def run(db: Database, settings: BenchSettings) -> None:
    broker = KafkaBroker()
    await asyncio.to_thread(broker.start)
    note(f"kafka broker ready on {broker.bootstrap}")
    # a partition per worker, so that every worker of a group has work
    await create_topics(
        broker.bootstrap,
        [f"workflow.jobs.{LATENCY_TYPE}", f"workflow.jobs.{SINGLE_TYPE}"],
        partitions=max(settings.workers, 1),
    )
    dsn = await db.new_database("bench_kafka")
    log_path = Path(tempfile.mkdtemp(prefix="rochallor-bench-")) / "engine-kafka.log"
    engine = testing.EngineProcess(
        dsn,
        log_path,
        inherit=True,
        env={
            "WE_LOG_LEVEL": os.environ.get("WE_LOG_LEVEL", "WARN"),
            "WE_DISPATCH_MODE": "kafka_outbox",
            "WE_KAFKA_SEED_BROKERS": broker.bootstrap,
            "WE_KAFKA_TRANSPORT": "plaintext",
        },
    )
    conn = None
    try:
        await asyncio.to_thread(engine.start, 60.0)
        note(f"kafka_outbox engine pid {engine.pid} on {engine.rest_url} (log {log_path})")
        conn = await connect(dsn)
        load = KafkaLoad(engine, conn, settings)  # type: ignore[arg-type]
        load.bootstrap = broker.bootstrap
        note("scenario 6: pickup latency, kafka_outbox")
        await e2e.run_latency(load, "kafka")
        note("scenario 6: single step throughput, kafka_outbox")
        await _single(load)
    finally:
        if conn is not None:
            await conn.close()
        if engine.running:
            await asyncio.to_thread(engine.stop, 20)
        await asyncio.to_thread(broker.stop)


async def _single(load: KafkaLoad) -> None:
    handled = [0]
    registry = Registry()

    @registry.register(SINGLE_TYPE)
    async def handle(_ctx: dict[str, Any]) -> None:
        handled[0] += 1

    async with RestClient(load.engine.rest_url) as client:
        await client.upload_definition(e2e.single_step(SINGLE_TYPE, SINGLE_TYPE))
    rates = await load.throughput(
        SINGLE_TYPE, registry, lambda: handled[0], {"jobs": e2e.jobs_completed(SINGLE_TYPE)}
    )
    figure("e2e_single_step_jobs_per_s_kafka", rates["jobs"])
