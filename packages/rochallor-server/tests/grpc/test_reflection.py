"""gRPC server reflection is enough for a grpcurl-style client: list, describe and call.

The client is the standard ``grpcio`` stack plus ``grpcio-reflection``, with no stubs and no
``.proto`` file: every descriptor it uses comes from the engine's reflection service, over a
real HTTP/2 connection to the in-process engine. It runs in a subprocess because grpclib's
bundled health/reflection protos and grpcio's declare the same symbols, which cannot share one
process's default descriptor pool (stack.md trap 5).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from .conftest import fixture_definition

# Prints one JSON object with everything the test checks.
_CLIENT = r"""
import json
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha import reflection_pb2 as rpb
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

ENGINE = "workflow.v1.WorkflowEngine"
port = int(sys.argv[1])
document = json.load(sys.stdin)
out = {}
with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
    # 1. The raw v1 protocol, which grpcurl tries first. v1alpha's messages are the same on
    #    the wire (only the package differs), and grpcio-reflection ships only those.
    info = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=rpb.ServerReflectionRequest.SerializeToString,
        response_deserializer=rpb.ServerReflectionResponse.FromString,
    )
    requests = [
        rpb.ServerReflectionRequest(list_services=""),
        rpb.ServerReflectionRequest(file_containing_symbol=ENGINE),
        rpb.ServerReflectionRequest(file_containing_symbol="workflow.v1.NoSuchThing"),
    ]
    listed, containing, unknown = list(info(iter(requests), timeout=10))
    out["services"] = sorted(s.name for s in listed.list_services_response.service)
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in containing.file_descriptor_response.file_descriptor_proto
    ]
    out["files"] = [f.name for f in files]
    engine = next(f for f in files if f.name == "workflow/v1/engine.proto")
    out["dependencies"] = sorted(engine.dependency)
    service = next(s for s in engine.service if s.name == "WorkflowEngine")
    out["methods"] = {m.name: [m.input_type, m.output_type] for m in service.method}
    out["messages"] = {
        m.name: {f.name: f.number for f in m.field} for m in engine.message_type
    }
    out["unknown_symbol"] = unknown.WhichOneof("message_response")

    # 2. grpcurl-style: a descriptor pool fed only by reflection (grpcio-reflection's client,
    #    v1alpha), then "describe" every listed service and the reflection service itself.
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    out["described"] = {
        name: sorted(m.name for m in pool.FindServiceByName(name).methods)
        for name in [*out["services"], "grpc.reflection.v1.ServerReflection"]
    }

    # 3. Calls built from the reflected descriptors only (grpcurl -d '{json}' ...).
    def call(method_name, body):
        method = pool.FindServiceByName(ENGINE).methods_by_name[method_name]
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        rpc = channel.unary_unary(
            f"/{ENGINE}/{method_name}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        response, status = rpc.with_call(json_format.ParseDict(body, request_class()), timeout=10)
        return {"code": status.code().name, "response": json_format.MessageToDict(response)}

    out["upload"] = call("UploadDefinition", {"definition": document})
    out["list"] = call("ListDefinitions", {"pageSize": 10})
print(json.dumps(out))
"""

ENGINE_METHODS = {
    "UploadDefinition",
    "GetDefinition",
    "ListDefinitions",
    "StartInstance",
    "GetInstance",
    "GetInstanceHistory",
    "CancelInstance",
    "ListInstances",
    "PollJobs",
    "CompleteJob",
    "FailJob",
    "CompleteUserTask",
    "SignalWait",
    "ExtendJobLease",
    "RetryInstance",
}


async def _run_client(port: int, document: dict[str, Any]) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CLIENT,
        str(port),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(
        process.communicate(json.dumps(document).encode()), timeout=60
    )
    assert process.returncode == 0, stderr.decode()
    result: dict[str, Any] = json.loads(stdout)
    return result


def _grpc_json(document: dict[str, Any]) -> dict[str, Any]:
    """The conformance JSON as ProtoJSON: enum values get their proto prefix."""
    doc: dict[str, Any] = json.loads(json.dumps(document))
    for step in doc.get("steps", []):
        step["type"] = "STEP_TYPE_" + step["type"]
        for event in step.get("boundaryEvents", []):
            event["type"] = "BOUNDARY_EVENT_TYPE_" + event["type"]
    return doc


async def test_reflection_lists_describes_and_calls(grpc_port: int) -> None:
    document = fixture_definition("order-fulfilment")
    seen = await _run_client(grpc_port, _grpc_json(document))

    # list
    assert seen["services"] == ["grpc.health.v1.Health", "workflow.v1.WorkflowEngine"]

    # file_containing_symbol: the engine's FileDescriptorProto, decoded by the client
    assert "workflow/v1/engine.proto" in seen["files"]
    assert seen["dependencies"] == [
        "google/protobuf/struct.proto",
        "google/protobuf/timestamp.proto",
    ]
    methods = seen["methods"]
    assert set(methods) == ENGINE_METHODS
    assert len(methods) == len(ENGINE_METHODS)
    assert methods["PollJobs"] == [".workflow.v1.PollJobsRequest", ".workflow.v1.PollJobsResponse"]
    assert methods["ExtendJobLease"] == [
        ".workflow.v1.ExtendJobLeaseRequest",
        ".workflow.v1.ExtendJobLeaseResponse",
    ]
    assert seen["messages"]["PollJobsRequest"]["wait_ms"] == 5
    assert seen["messages"]["PollJobsRequest"]["worker_id"] == 1
    assert seen["unknown_symbol"] == "error_response"

    # describe: every listed service resolves, dependencies included (fetched by file name)
    described = seen["described"]
    assert set(described["workflow.v1.WorkflowEngine"]) == ENGINE_METHODS
    assert described["grpc.health.v1.Health"] == ["Check", "Watch"]
    assert described["grpc.reflection.v1.ServerReflection"] == ["ServerReflectionInfo"]

    # calls built from reflected descriptors only
    assert seen["upload"]["code"] == "OK"
    assert seen["upload"]["response"]["id"] == "SHOP::order-fulfilment"
    assert seen["upload"]["response"]["version"] == 1
    listed = seen["list"]
    assert listed["code"] == "OK"
    assert listed["response"]["total"] == 1
    [definition] = listed["response"]["definitions"]
    assert definition["id"] == "SHOP::order-fulfilment"
    assert [s["id"] for s in definition["steps"]] == [s["id"] for s in document["steps"]]
