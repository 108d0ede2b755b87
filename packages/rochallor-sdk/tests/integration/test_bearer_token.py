"""``--token`` / ``ROCHALLOR_TOKEN`` and the worker's ``token`` reach the engine as
``Authorization: Bearer …`` (read off real HTTP and gRPC servers that record them)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from grpclib.const import Cardinality, Handler
from grpclib.server import Server, Stream

from rochallor_sdk import GrpcClient, Registry, Worker
from rochallor_sdk._gen.workflow import v1 as pb

from ._cli import closed_port, ok, rochallor
from ._support import settings


class _Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, str | None]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: _Recorder

    def _answer(self, body: object) -> None:
        self.server.seen.append((self.path.split("?")[0], self.headers.get("Authorization")))
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer({"items": [], "total": 0})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer({"jobs": []})

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    server = _Recorder()
    thread = threading.Thread(target=server.serve_forever, name="header-recorder", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_cli_sends_the_token_from_the_flag_or_the_environment(recorder: _Recorder) -> None:
    ok(rochallor("instances", "list", engine_url=recorder.url))
    ok(rochallor("--token", "fl4g", "definitions", "list", engine_url=recorder.url))
    ok(rochallor("instances", "list", engine_url=recorder.url, env={"ROCHALLOR_TOKEN": "env"}))
    assert recorder.seen == [
        ("/v1/instances", None),
        ("/v1/definitions", "Bearer fl4g"),
        ("/v1/instances", "Bearer env"),
    ]


async def test_the_worker_sends_its_token(recorder: _Recorder) -> None:
    registry = Registry()
    registry.register("noop", lambda ctx: None)
    worker = Worker(
        registry,
        settings=settings(engine_url=recorder.url, token="w0rk", long_poll_wait=0.0),
        handle_signals=False,
    )
    async with worker:
        for _ in range(200):
            if recorder.seen:
                break
            await asyncio.sleep(0.01)
    assert recorder.seen, "the worker never polled"
    assert {header for _path, header in recorder.seen} == {"Bearer w0rk"}


class _MetadataRecorder:
    """A gRPC service whose GetInstance records the call's metadata (grpclib server)."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []

    async def _get_instance(
        self, stream: Stream[pb.GetInstanceRequest, pb.GetInstanceResponse]
    ) -> None:
        request = await stream.recv_message()
        assert request is not None
        value = stream.metadata.get("authorization") if stream.metadata else None
        self.seen.append(value if isinstance(value, str) else None)
        await stream.send_message(
            pb.GetInstanceResponse(
                instance=pb.WorkflowInstance(id=request.id, status=pb.InstanceStatus.COMPLETED)
            )
        )

    def __mapping__(self) -> dict[str, Handler]:
        return {
            "/workflow.v1.WorkflowEngine/GetInstance": Handler(
                self._get_instance,
                Cardinality.UNARY_UNARY,
                pb.GetInstanceRequest,
                pb.GetInstanceResponse,
            )
        }


async def test_the_grpc_client_sends_the_token_as_metadata() -> None:
    service = _MetadataRecorder()
    server = Server([service])
    port = closed_port()
    await server.start("127.0.0.1", port)
    try:
        async with GrpcClient(f"127.0.0.1:{port}", token="grpc-t0k") as client:
            assert (await client.get_instance("I1"))["id"] == "I1"
        async with GrpcClient(f"127.0.0.1:{port}") as client:
            await client.get_instance("I2")
    finally:
        server.close()
        await server.wait_closed()
    assert service.seen == ["Bearer grpc-t0k", None]
