"""The Kafka record of a dispatched job (``kafka-dispatch.md`` §6): the wire edge of
``kafka_outbox`` mode, and the only place besides the gRPC edge that builds protobuf."""

from __future__ import annotations

import json

from rochallor_server._gen.workflow import v1 as pb
from rochallor_server.engine.model import Job

SCHEMA_VERSION = 1
TOPIC_PREFIX = "workflow.jobs."
CONTENT_TYPE = b"application/x-protobuf; proto=workflow.v1.JobDispatchEvent"


def topic_for(job_type: str) -> str:
    return TOPIC_PREFIX + job_type


def group_for(job_type: str) -> str:
    """The consumer group workers of ``job_type`` join."""
    return "workflow.workers." + job_type


def encode(job: Job, dedup_id: str) -> bytes:
    """The ``JobDispatchEvent`` dispatching ``job`` (its current retry budget and payload)."""
    return bytes(
        pb.JobDispatchEvent(
            schema_version=SCHEMA_VERSION,
            dedup_id=dedup_id,
            job_id=job.id,
            instance_id=job.instance_id,
            step_execution_id=job.step_execution_id,
            job_type=job.job_type,
            retries_remaining=max(job.retries_remaining, 0),
            job_payload=_json(job.payload or {}),
            created_at=job.created_at,
        )
    )


def _json(value: object) -> bytes:
    """Compact UTF-8 JSON (integers of any size stay exact)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def headers(dedup_id: str) -> list[tuple[str, bytes]]:
    return [("content-type", CONTENT_TYPE), ("dedup-id", dedup_id.encode())]
