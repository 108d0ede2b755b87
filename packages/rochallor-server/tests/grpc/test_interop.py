"""A client built with the standard ``grpcio`` + ``protobuf`` stack against the server.

The stubs are generated at test time with ``grpc_tools.protoc`` from the repository's
``proto/`` directory; the client runs in a worker thread (it is synchronous).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from .conftest import PROTO_ROOT, Rest, fixture_definition


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ModuleType, ModuleType]]:
    out = tmp_path_factory.mktemp("pb2")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            str(PROTO_ROOT / "workflow" / "v1" / "engine.proto"),
        ],
        check=True,
    )
    sys.path.insert(0, str(out))
    try:
        messages = importlib.import_module("workflow.v1.engine_pb2")
        services = importlib.import_module("workflow.v1.engine_pb2_grpc")
        yield messages, services
    finally:
        sys.path.remove(str(out))
        for name in [n for n in sys.modules if n == "workflow" or n.startswith("workflow.")]:
            del sys.modules[name]


def _definition(pb2: Any, document: dict[str, Any]) -> Any:
    doc = dict(document)
    doc["steps"] = [dict(s, type="STEP_TYPE_" + s["type"]) for s in document["steps"]]
    return json_format.ParseDict(doc, pb2.WorkflowDefinition())


def _run_order(pb2: Any, pb2_grpc: Any, port: int) -> dict[str, Any]:
    """The whole scenario with the grpcio client; returns what the test checks."""
    seen: dict[str, Any] = {"jobs": []}
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb2_grpc.WorkflowEngineStub(channel)
        document = fixture_definition("order-fulfilment")
        uploaded = stub.UploadDefinition(
            pb2.UploadDefinitionRequest(definition=_definition(pb2, document)), timeout=10
        )
        seen["uploaded"] = (uploaded.id, uploaded.version)
        request = pb2.StartInstanceRequest(definition_id=document["id"], business_key="interop")
        request.variables.update({"orderId": "o-42", "amount": 120})
        started = stub.StartInstance(request, timeout=10).instance
        seen["instance_id"] = started.id
        results = {
            "reserve-stock": {"reserved": True},
            "charge-payment": {"paymentStatus": "CAPTURED"},
            "dispatch-order": {"trackingId": "T-42"},
        }
        for job_type, output in results.items():
            polled = stub.PollJobs(
                pb2.PollJobsRequest(
                    worker_id="grpcio-worker", job_types=[job_type], max_jobs=5, wait_ms=5000
                ),
                timeout=10,
            )
            assert len(polled.jobs) == 1, polled
            job = polled.jobs[0]
            seen["jobs"].append(
                {
                    "step_id": job.step_id,
                    "job_type": job.job_type,
                    "has_variables": job.HasField("variables"),
                    "variables": json_format.MessageToDict(job.variables),
                    "lock_expires_at": job.lock_expires_at.ToDatetime(tzinfo=dt.UTC),
                }
            )
            complete = pb2.CompleteJobRequest(job_id=job.id, worker_id="grpcio-worker")
            complete.variables_to_set.update(output)
            stub.CompleteJob(complete, timeout=10)
        final = stub.GetInstance(pb2.GetInstanceRequest(id=started.id), timeout=10).instance
        seen["final"] = final
        seen["final_json"] = json_format.MessageToDict(final)
        history = stub.GetInstanceHistory(pb2.GetInstanceHistoryRequest(id=started.id), timeout=10)
        seen["history"] = [
            (h.step_id, pb2.StepType.Name(h.step_type), pb2.StepExecutionStatus.Name(h.status))
            for h in history.executions
        ]
        missing = None
        try:
            stub.GetInstance(pb2.GetInstanceRequest(id="nope"), timeout=10)
        except grpc.RpcError as exc:
            missing = (exc.code(), exc.details())
        seen["missing"] = missing
    return seen


async def test_grpcio_client_runs_order_fulfilment(
    stubs: tuple[ModuleType, ModuleType], grpc_port: int, rest: Rest
) -> None:
    pb2, pb2_grpc = stubs
    seen = await asyncio.to_thread(_run_order, pb2, pb2_grpc, grpc_port)

    assert seen["uploaded"] == ("SHOP::order-fulfilment", 1)
    assert [j["step_id"] for j in seen["jobs"]] == [
        "reserve-stock",
        "charge-payment",
        "dispatch-order",
    ]
    assert all(j["has_variables"] for j in seen["jobs"])
    assert seen["jobs"][0]["variables"] == {"orderId": "o-42", "amount": 120.0}
    assert seen["jobs"][2]["variables"]["paymentStatus"] == "CAPTURED"
    assert all(j["lock_expires_at"] > dt.datetime.now(dt.UTC) for j in seen["jobs"])

    final_json = seen["final_json"]
    assert final_json["status"] == "INSTANCE_STATUS_COMPLETED"
    assert seen["history"] == [
        ("reserve-stock", "STEP_TYPE_SERVICE_TASK", "STEP_EXECUTION_STATUS_COMPLETED"),
        ("charge-payment", "STEP_TYPE_SERVICE_TASK", "STEP_EXECUTION_STATUS_COMPLETED"),
        ("payment-status", "STEP_TYPE_DECISION", "STEP_EXECUTION_STATUS_COMPLETED"),
        ("dispatch-order", "STEP_TYPE_SERVICE_TASK", "STEP_EXECUTION_STATUS_COMPLETED"),
        ("end", "STEP_TYPE_END", "STEP_EXECUTION_STATUS_COMPLETED"),
    ]
    assert seen["missing"] == (grpc.StatusCode.NOT_FOUND, 'instance "nope" not found')

    # REST and gRPC observe the same instance.
    status, body = await rest.call("GET", f"/v1/instances/{seen['instance_id']}")
    assert status == 200
    final = seen["final"]
    as_rest = {
        "id": final.id,
        "definitionId": final.definition_id,
        "definitionVersion": final.definition_version,
        "status": pb2.InstanceStatus.Name(final.status).removeprefix("INSTANCE_STATUS_"),
        "currentStepIds": list(final.current_step_ids),
        "variables": json_format.MessageToDict(final.variables),
        "startedAt": final.started_at.ToDatetime(tzinfo=dt.UTC),
        "completedAt": final.completed_at.ToDatetime(tzinfo=dt.UTC),
        "businessKey": final.business_key,
    }
    expected = dict(body)
    expected["startedAt"] = dt.datetime.fromisoformat(body["startedAt"])
    expected["completedAt"] = dt.datetime.fromisoformat(body["completedAt"])
    assert as_rest == expected
    assert body["variables"] == {
        "orderId": "o-42",
        "amount": 120,
        "reserved": True,
        "paymentStatus": "CAPTURED",
        "trackingId": "T-42",
    }
    assert type(body["variables"]["amount"]) is int


def _health_and_reflection(port: int) -> tuple[bytes, bytes]:
    """Raw-bytes calls: no health/reflection stubs needed (the messages are tiny)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=None,
            response_deserializer=None,
        )
        health: bytes = check(b"", timeout=10)  # HealthCheckRequest{service=""}
        reflect = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=None,
            response_deserializer=None,
        )
        # ServerReflectionRequest{list_services=""}: field 7, length-delimited, empty.
        answers = list(reflect(iter([b"\x3a\x00"]), timeout=10))
    return health, b"".join(answers)


async def test_grpcio_health_and_reflection(grpc_port: int) -> None:
    health, services = await asyncio.to_thread(_health_and_reflection, grpc_port)
    assert health == b"\x08\x01"  # HealthCheckResponse{status=SERVING}
    assert b"workflow.v1.WorkflowEngine" in services
    assert b"grpc.health.v1.Health" in services
