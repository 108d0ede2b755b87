"""``--token`` / ``ROCHALLOR_TOKEN`` and the worker's ``token`` reach the engine as
``Authorization: Bearer …`` (read off a real HTTP server that records the headers)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rochallor_sdk import Registry, Worker

from ._cli import ok, rochallor
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
