"""The Kafka runner's pure parts: the dedup cache and the record decoder (the runner itself is
tested against a real broker in the server's ``tests_kafka``)."""

from __future__ import annotations

import datetime as dt

import pytest

from rochallor_sdk import ConfigurationError, DedupCache, KafkaWorker, Registry
from rochallor_sdk._gen.workflow import v1 as pb
from rochallor_sdk._kafka import decode_event


def test_dedup_remembers_within_its_window_only() -> None:
    cache = DedupCache(window=10, size=100)
    cache.add("a", now=0)
    assert cache.seen("a", now=9.9)
    assert not cache.seen("a", now=10.1)
    assert len(cache) == 0


def test_dedup_forgets_the_oldest_beyond_its_size() -> None:
    cache = DedupCache(window=60, size=2)
    for n, key in enumerate(["a", "b", "c"]):
        cache.add(key, now=n)
    assert [cache.seen(k, now=3) for k in "abc"] == [False, True, True]


def test_an_empty_dedup_id_is_never_deduplicated() -> None:
    cache = DedupCache()
    cache.add("")
    assert not cache.seen("")
    with pytest.raises(ConfigurationError):
        DedupCache(window=0)


def _event(**changes: object) -> bytes:
    fields: dict[str, object] = {
        "schema_version": 1,
        "dedup_id": "d-1",
        "job_id": "j-1",
        "instance_id": "i-1",
        "step_execution_id": "e-1",
        "job_type": "charge",
        "retries_remaining": 2,
        "job_payload": b'{"amount": 100}',
        "created_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    }
    fields.update(changes)
    return bytes(pb.JobDispatchEvent(**fields))  # type: ignore[arg-type]


def test_decode_event_gives_the_handler_job() -> None:
    event = decode_event(_event())
    assert event.dedup_id == "d-1"
    assert event.job.to_context() == {
        "id": "j-1",
        "jobType": "charge",
        "instanceId": "i-1",
        "stepId": "",
        "stepExecutionId": "e-1",
        "retriesRemaining": 2,
        "variables": {"amount": 100},
        "lockExpiresAt": None,
    }
    assert decode_event(_event(job_payload=b"")).job.variables == {}


@pytest.mark.parametrize(
    "value",
    [b"\xff\xff\xff", _event(job_payload=b"[1]"), _event(job_payload=b"{"), _event(job_id="")],
)
def test_undecodable_records_are_rejected(value: bytes) -> None:
    with pytest.raises(ValueError):
        decode_event(value)


def test_brokers_are_required() -> None:
    registry = Registry()
    registry.register("x", lambda ctx: None)
    with pytest.raises(ConfigurationError):
        KafkaWorker(registry, brokers=" , ")
