"""The relay under failures: killed mid-batch, broker outage, missing topics, two replicas.

Engines run as subprocesses (``python -m rochallor_server``) where a test kills one."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from rochallor_sdk import KafkaWorker, Registry, create_client
from rochallor_sdk._kafka import decode_event
from rochallor_server.app import Server
from rochallor_server.dispatch.kafka_outbox.relay import RELAY_LOCK_KEY
from rochallor_server.errors import RochallorError
from rochallor_server.testing import EngineProcess, EngineProcessError
from rochallor_server.testing.kafka_broker import KafkaBroker, create_topics

from .support import chain, eventually, kafka_env, read_topic, settings_for


def metric(engine: EngineProcess, name: str) -> float:
    url = f"http://127.0.0.1:{engine.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=2) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    return 0.0


@pytest.fixture
def engines(pg_dsn: str, tmp_path: Path, kafka_broker: KafkaBroker) -> Iterator[Any]:
    """``make(**env)`` → a started kafka_outbox engine subprocess on this test's database."""
    made: list[EngineProcess] = []

    def make(**env: str) -> EngineProcess:
        engine = EngineProcess(
            pg_dsn,
            tmp_path / f"engine-{len(made)}.log",
            env={**kafka_env(kafka_broker.bootstrap), "DB_MAX_CONNS": "8", **env},
        )
        made.append(engine)
        engine.start()
        return engine

    yield make
    for engine in made:
        if engine.running:
            engine.stop()


@pytest_asyncio.fixture
async def db(pg_dsn: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    conn = await asyncpg.connect(pg_dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def _outbox_rows(db: asyncpg.Connection[Any]) -> int:
    return int(await db.fetchval("SELECT count(*) FROM dispatch_outbox"))


async def test_relay_killed_mid_batch_loses_nothing_and_steps_advance_once(
    engines: Any, kafka_broker: KafkaBroker, db: asyncpg.Connection[Any], pg_dsn: str, unique: str
) -> None:
    first, second = f"{unique}-a", f"{unique}-b"
    await create_topics(kafka_broker.bootstrap, [f"workflow.jobs.{t}" for t in (first, second)])
    count = 60
    # Hold the relay lock: the engine's relay cannot lead while the backlog is built.
    assert await db.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK_KEY)
    doomed = engines(WE_OUTBOX_BATCH_SIZE="25")
    async with create_client(doomed.rest_url) as admin:
        await admin.upload_definition(chain(f"kill-{unique}", [first, second]))
        ids = [(await admin.start_instance(f"kill-{unique}"))["id"] for _ in range(count)]
    assert await _outbox_rows(db) == count

    # The relay's commit inserts audit rows: block them, so that it publishes its first batch
    # and then waits, inside its transaction, where it is killed.
    blocker = await asyncpg.connect(pg_dsn)
    try:
        blocking = blocker.transaction()
        await blocking.start()
        await blocker.execute("LOCK TABLE audit_log IN SHARE MODE")
        await db.fetchval("SELECT pg_advisory_unlock($1)", RELAY_LOCK_KEY)
        published = await read_topic(kafka_broker.bootstrap, f"workflow.jobs.{first}", count=25)
        assert await _outbox_rows(db) == count, "the batch is published but not committed"
        os.kill(doomed.pid, signal.SIGKILL)
        assert doomed.proc is not None
        doomed.proc.wait(10)
        doomed.proc = None
        await blocking.rollback()
    finally:
        await blocker.close()

    survivor = engines()
    calls: collections.Counter[str] = collections.Counter()
    registry = Registry()

    @registry.register(first)
    @registry.register(second)
    def handle(ctx: dict[str, Any]) -> dict[str, Any]:
        calls[ctx["id"]] += 1
        return {ctx["jobType"]: True}

    async with (
        create_client(survivor.rest_url) as admin,
        KafkaWorker(
            registry,
            brokers=kafka_broker.bootstrap,
            engine_url=survivor.rest_url,
            handle_signals=False,
        ) as worker,
    ):

        async def all_done() -> bool:
            for instance_id in ids:
                if (await admin.get_instance(instance_id))["status"] != "COMPLETED":
                    return False
            return True

        await eventually(all_done, timeout=90, what="every instance to complete")
        histories = [await admin.get_history(i) for i in ids]

    records = await read_topic(kafka_broker.bootstrap, f"workflow.jobs.{first}", count=count + 25)
    events = [decode_event(r.value) for r in records]
    by_dedup = collections.Counter(e.dedup_id for e in events)
    republished = {d for d, n in by_dedup.items() if n > 1}
    assert len({e.job.id for e in events}) == count, "every job delivered"
    assert len(republished) >= 25, "the killed batch was published again"
    assert {e.dedup_id for e in decode_all(published)} <= republished, "same dedup ids"
    assert worker.duplicates >= 25
    assert len(calls) == 2 * count and set(calls.values()) == {1}, "each job handled once"
    for history in histories:
        assert [e["stepId"] for e in history] == ["step-0", "step-1", "end"]
    assert await _outbox_rows(db) == 0


def decode_all(records: list[Any]) -> list[Any]:
    return [decode_event(r.value) for r in records]


async def test_broker_outage_stops_publishing_not_the_engine_then_the_backlog_drains(
    pg_dsn: str, kafka_broker: KafkaBroker, db: asyncpg.Connection[Any], unique: str
) -> None:
    job_type = f"{unique}-outage"
    topic = f"workflow.jobs.{job_type}"
    await create_topics(kafka_broker.bootstrap, [topic])
    server = Server(settings_for(pg_dsn, kafka_broker.bootstrap))
    await server.start()
    try:
        async with create_client(f"http://127.0.0.1:{server.rest_port}") as admin:
            await admin.upload_definition(chain(f"outage-{unique}", [job_type]))
            await admin.start_instance(f"outage-{unique}")
            await read_topic(kafka_broker.bootstrap, topic, count=1)

            await asyncio.to_thread(kafka_broker.stop, remove=False)
            try:
                ids = [(await admin.start_instance(f"outage-{unique}"))["id"] for _ in range(20)]
                assert await _outbox_rows(db) == 20, "writes go on; nothing is published"

                async def errors_counted() -> bool:
                    m = server.metrics
                    return m.relay_publish.labels("error")._value.get() > 0  # type: ignore[no-any-return]

                await eventually(errors_counted, timeout=60, what="failed publishes")
                assert await _outbox_rows(db) == 20
            finally:
                await asyncio.to_thread(kafka_broker.start)

            async def drained() -> bool:
                return await _outbox_rows(db) == 0

            await eventually(drained, timeout=60, what="the backlog to drain")
        records = await read_topic(kafka_broker.bootstrap, topic, count=21)
        assert {decode_event(r.value).job.instance_id for r in records} >= set(ids)
    finally:
        await server.stop()


async def test_a_missing_topic_holds_back_only_its_own_rows(
    pg_dsn: str, kafka_broker: KafkaBroker, db: asyncpg.Connection[Any], unique: str
) -> None:
    missing, present = f"{unique}-missing", f"{unique}-present"
    await create_topics(kafka_broker.bootstrap, [f"workflow.jobs.{present}"])
    server = Server(settings_for(pg_dsn, kafka_broker.bootstrap))
    await server.start()
    try:
        async with create_client(f"http://127.0.0.1:{server.rest_port}") as admin:
            await admin.upload_definition(chain(f"missing-{unique}", [missing]))
            await admin.upload_definition(chain(f"present-{unique}", [present]))
            held = [(await admin.start_instance(f"missing-{unique}"))["id"] for _ in range(3)]
            flowing = [(await admin.start_instance(f"present-{unique}"))["id"] for _ in range(3)]
            records = await read_topic(kafka_broker.bootstrap, f"workflow.jobs.{present}", count=3)
            assert {decode_event(r.value).job.instance_id for r in records} == set(flowing)
            waiting = await db.fetch("SELECT instance_id FROM dispatch_outbox")
            assert {r["instance_id"] for r in waiting} == set(held)

            await create_topics(kafka_broker.bootstrap, [f"workflow.jobs.{missing}"])
            late = await read_topic(kafka_broker.bootstrap, f"workflow.jobs.{missing}", count=3)
            assert {decode_event(r.value).job.instance_id for r in late} == set(held)
    finally:
        await server.stop()


async def test_start_up_names_a_missing_topic_and_an_unreachable_broker(
    pg_dsn: str, kafka_broker: KafkaBroker, unique: str
) -> None:
    polling = Server(settings_for(pg_dsn, None))
    await polling.start()
    try:
        async with create_client(f"http://127.0.0.1:{polling.rest_port}") as admin:
            await admin.upload_definition(chain(f"nowhere-{unique}", [f"{unique}-nowhere"]))
    finally:
        await polling.stop()

    with pytest.raises(RochallorError, match=rf"workflow\.jobs\.{unique}-nowhere"):
        await Server(settings_for(pg_dsn, kafka_broker.bootstrap)).start()

    closed = f"127.0.0.1:{_closed_port()}"
    with pytest.raises(RochallorError, match=f"cannot reach the Kafka brokers {closed}"):
        await Server(settings_for(pg_dsn, closed)).start()


def _closed_port() -> int:
    from rochallor_server.store.postgres.embedded import free_port

    return free_port()


async def test_two_replicas_elect_one_relay_leader_and_fail_over(
    engines: Any, kafka_broker: KafkaBroker, unique: str
) -> None:
    job_type = f"{unique}-ha"
    topic = f"workflow.jobs.{job_type}"
    await create_topics(kafka_broker.bootstrap, [topic])
    replicas = [engines(), engines()]

    async def one_leader() -> EngineProcess | None:
        flags = [metric(e, "workflow_engine_dispatch_relay_leader") for e in replicas]
        return replicas[flags.index(1.0)] if sorted(flags) == [0.0, 1.0] else None

    leader = await eventually(one_leader, what="exactly one relay leader")
    for _ in range(5):  # it stays that way
        assert await one_leader() is leader
        await asyncio.sleep(0.2)
    [follower] = [e for e in replicas if e is not leader]

    os.kill(leader.pid, signal.SIGKILL)
    assert leader.proc is not None
    leader.proc.wait(10)
    leader.proc = None

    async def follower_leads() -> bool:
        return metric(follower, "workflow_engine_dispatch_relay_leader") == 1.0

    await eventually(follower_leads, timeout=30, what="the follower to take over")
    async with create_client(follower.rest_url) as admin:
        await admin.upload_definition(chain(f"ha-{unique}", [job_type]))
        instance = await admin.start_instance(f"ha-{unique}")
    [record] = await read_topic(kafka_broker.bootstrap, topic, count=1)
    assert decode_event(record.value).job.instance_id == instance["id"]


async def test_a_relay_whose_lock_session_dies_steps_down_and_leads_again(
    pg_dsn: str, kafka_broker: KafkaBroker, db: asyncpg.Connection[Any], unique: str
) -> None:
    job_type = f"{unique}-session"
    topic = f"workflow.jobs.{job_type}"
    await create_topics(kafka_broker.bootstrap, [topic])
    server = Server(settings_for(pg_dsn, kafka_broker.bootstrap))
    await server.start()
    try:
        leader = server.metrics.relay_leader

        async def leading() -> bool:
            return leader._value.get() == 1.0  # type: ignore[no-any-return]

        await eventually(leading, what="the relay to lead")
        # The lock's session is killed under the relay (a failover of the database, say).
        killed = await db.fetchval(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
            " AND ((classid::bigint << 32) | objid::bigint) = $1",
            RELAY_LOCK_KEY,
        )
        assert killed is True

        async def stepped_down_then_back() -> bool:
            rows = await db.fetch(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory'"
                " AND ((classid::bigint << 32) | objid::bigint) = $1",
                RELAY_LOCK_KEY,
            )
            return bool(rows) and leader._value.get() == 1.0

        await eventually(stepped_down_then_back, what="the relay to lead again")
        async with create_client(f"http://127.0.0.1:{server.rest_port}") as admin:
            await admin.upload_definition(chain(f"session-{unique}", [job_type]))
            instance = await admin.start_instance(f"session-{unique}")
        [record] = await read_topic(kafka_broker.bootstrap, topic, count=1)
        assert decode_event(record.value).job.instance_id == instance["id"]
    finally:
        await server.stop()


def test_the_server_command_exits_naming_a_missing_topic(
    pg_dsn: str, kafka_broker: KafkaBroker, tmp_path: Path, unique: str
) -> None:
    async def upload() -> None:
        polling = Server(settings_for(pg_dsn, None))
        await polling.start()
        try:
            async with create_client(f"http://127.0.0.1:{polling.rest_port}") as admin:
                await admin.upload_definition(chain(f"cli-{unique}", [f"{unique}-absent"]))
        finally:
            await polling.stop()

    asyncio.run(upload())
    engine = EngineProcess(pg_dsn, tmp_path / "engine.log", env=kafka_env(kafka_broker.bootstrap))
    with pytest.raises(EngineProcessError, match=r"exited with 1 at start") as info:
        engine.start()
    assert f"missing Kafka topic(s) workflow.jobs.{unique}-absent" in str(info.value)
