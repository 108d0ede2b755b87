"""The broker harness itself: it starts, serves produce/consume, and survives a restart."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from rochallor_server.testing.kafka_broker import KafkaBroker, create_topics


async def _roundtrip(bootstrap: str, topic: str, value: bytes) -> list[bytes]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"{topic}-reader",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        seen: list[bytes] = []
        async with asyncio.timeout(30):
            while value not in seen:
                batches = await consumer.getmany(timeout_ms=1000)
                seen += [r.value for records in batches.values() for r in records if r.value]
        return seen
    finally:
        await consumer.stop()


async def test_broker_serves_and_keeps_data_across_a_restart(
    kafka_broker: KafkaBroker, unique: str
) -> None:
    topic = f"harness.{unique}"
    await create_topics(kafka_broker.bootstrap, [topic])
    assert await _roundtrip(kafka_broker.bootstrap, topic, b"one") == [b"one"]

    await asyncio.to_thread(kafka_broker.stop, remove=False)
    assert not kafka_broker.running
    await asyncio.to_thread(kafka_broker.start)
    assert kafka_broker.running

    assert await _roundtrip(kafka_broker.bootstrap, topic, b"two") == [b"one", b"two"]
