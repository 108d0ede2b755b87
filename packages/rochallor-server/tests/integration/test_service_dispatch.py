"""kafka_outbox mode on PostgreSQL, without a broker: the service writes a job's outbox row in
the statement that makes the job claimable, and again when a retry makes it claimable again
(the relay and the broker are tested in ``tests_kafka``)."""

from __future__ import annotations

from typing import Any

from rochallor_server._gen.workflow import v1 as pb
from rochallor_server.config import DispatchMode
from rochallor_server.dispatch.kafka_outbox import event
from rochallor_server.store.postgres import PostgresStore

from .services import make_service, rows

FLOW: dict[str, Any] = {
    "id": "flow",
    "name": "flow",
    "steps": [
        {
            "id": "a",
            "name": "a",
            "type": "SERVICE_TASK",
            "jobType": "charge",
            "retryCount": 1,
            "nextStep": "end",
        },
        {"id": "end", "name": "end", "type": "END"},
    ],
}

OUTBOX = (
    "SELECT id, job_id, instance_id, job_type, payload FROM dispatch_outbox ORDER BY created_at, id"
)


async def test_the_outbox_row_is_written_with_the_job_and_again_on_retry(
    pg_store: PostgresStore, pg_dsn: str
) -> None:
    engine = make_service(pg_store, dispatch=event.encode, dispatch_mode=DispatchMode.KAFKA_OUTBOX)
    await engine.upload_definition(FLOW)
    instance = await engine.start_instance(
        definition_id="flow", version=None, variables={"x": 1}, business_key=None
    )
    [first] = await rows(pg_dsn, OUTBOX)
    [stored] = await rows(pg_dsn, "SELECT id FROM job")
    assert (first["job_id"], first["instance_id"], first["job_type"]) == (
        stored["id"],
        instance.id,
        "charge",
    )
    assert pb.JobDispatchEvent.parse(first["payload"]).dedup_id == first["id"]

    await engine.fail_job(stored["id"], worker_id=None, error_message="again", retryable=True)
    again, second = await rows(pg_dsn, OUTBOX)
    assert again == first
    assert second["job_id"] == stored["id"] and second["id"] != first["id"]
    assert pb.JobDispatchEvent.parse(second["payload"]).retries_remaining == 0

    await engine.complete_job(stored["id"], worker_id=None, variables={})
    assert len(await rows(pg_dsn, OUTBOX)) == 2


async def test_polling_mode_writes_no_outbox_row(pg_store: PostgresStore, pg_dsn: str) -> None:
    engine = make_service(pg_store)
    await engine.upload_definition(FLOW)
    await engine.start_instance(definition_id="flow", version=None, variables={}, business_key=None)
    assert len(await rows(pg_dsn, "SELECT id FROM job")) == 1
    assert await rows(pg_dsn, OUTBOX) == []
