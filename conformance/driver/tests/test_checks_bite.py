"""The suite fails when the engine misbehaves.

The engine under test is put behind a small HTTP proxy in this test. Passing everything through
unchanged, the selected scenarios pass; with one deliberate fault injected on the wire, they
fail, the driver prints which, and exits non-zero. The faults are behaviours real engines have
had (``semantics.md`` notes them for the reference engine):

* DECISION branches evaluated in another order than written: the proxy reverses the entries of
  every ``conditionalNextSteps`` map on upload, so the engine behind it routes as an engine
  that ignores the written order would.
* An unknown job answered with ``500`` instead of ``404`` on completion.

Nothing in the server or the driver knows about the proxy; the driver is pointed at its URL
exactly as it would be pointed at another engine.

One fault cannot be made on the wire: a JOIN_GATEWAY that fires on the first branch to arrive.
For it the test starts a second engine process whose interpreter loads a ``sitecustomize``
module written by the test; it wraps the server's definition compiler so that every join
expects a single arrival. The product has no switch for this: the fault exists only in that
process, and the driver measures that engine as it would any other.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import FAST_ENGINE, last_line, run_driver, sdk_worker

Fault = Callable[[str, str, bytes], bytes] | None


class Proxy:
    """A reverse proxy on its own event loop thread, with optional request/response faults."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.request_fault: Callable[[str, str, bytes], bytes] | None = None
        self.response_fault: Callable[[str, str, int], int] | None = None
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        self.session = aiohttp.ClientSession()
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self.request_fault is not None:
            body = self.request_fault(request.method, request.path, body)
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type",)}
        async with self.session.request(
            request.method,
            self.upstream + request.path_qs,
            data=body or None,
            headers=headers,
        ) as upstream:
            payload = await upstream.read()
            status = upstream.status
            content_type = upstream.headers.get("Content-Type")
        if self.response_fault is not None:
            status = self.response_fault(request.method, request.path, status)
        response = web.Response(status=status, body=payload if status != 204 else None)
        if content_type and status != 204:
            response.headers["Content-Type"] = content_type
        return response

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(10)

    def stop(self) -> None:
        async def shutdown() -> None:
            await self.session.close()
            await self.runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def proxy(engine: Any) -> Iterator[Proxy]:
    p = Proxy(engine.rest_url)
    p.start()
    try:
        yield p
    finally:
        p.stop()


def reverse_decisions(method: str, path: str, body: bytes) -> bytes:
    if method != "POST" or path != "/v1/definitions" or not body:
        return body
    definition = json.loads(body)
    for step in definition.get("steps") or []:
        routes = step.get("conditionalNextSteps")
        if isinstance(routes, dict):
            step["conditionalNextSteps"] = dict(reversed(list(routes.items())))
    return json.dumps(definition).encode()


def unknown_job_is_500(method: str, path: str, status: int) -> int:
    if method == "POST" and re.fullmatch(r"/v1/jobs/[^/]+/(complete|fail)", path) and status == 404:
        return 500
    return status


ROUTING = ["decision-order", "decision-order-reversed", "loan-high-risk", "linear-service-tasks"]


def _table(result: Any) -> dict[str, str]:
    verdicts = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] in ("PASS", "FAIL"):
            verdicts[parts[0]] = parts[2]
    return verdicts


def _only(names: list[str]) -> list[str]:
    return [arg for name in names for arg in ("--only", name)]


def test_transparent_proxy_passes(proxy: Proxy) -> None:
    result = run_driver(
        "--engine-url", proxy.url, "--worker", sdk_worker(), *_only([*ROUTING, "unknown-instance"])
    )
    assert last_line(result) == "5 passed, 0 failed"
    assert result.returncode == 0


def test_decision_order_fault_fails_the_suite(proxy: Proxy) -> None:
    proxy.request_fault = reverse_decisions
    result = run_driver("--engine-url", proxy.url, "--worker", sdk_worker(), *_only(ROUTING))
    verdicts = _table(result)
    assert verdicts == {
        "decision-order": "FAIL",
        "decision-order-reversed": "FAIL",
        "loan-high-risk": "FAIL",
        "linear-service-tasks": "PASS",  # no DECISION in it: the fault does not touch it
    }
    assert "end-rejected" in result.stdout  # the detail says where it went instead
    assert last_line(result) == "1 passed, 3 failed"
    assert result.returncode == 1


def test_unknown_job_500_fails_the_suite(proxy: Proxy) -> None:
    proxy.response_fault = unknown_job_is_500
    result = run_driver("--engine-url", proxy.url, *_only(["unknown-instance"]))
    assert _table(result) == {"unknown-instance": "FAIL"}
    assert "expected a not_found error, engine answered 500" in result.stdout
    assert last_line(result) == "0 passed, 1 failed"
    assert result.returncode == 1


EARLY_JOIN = """
import attrs
from rochallor_server.service import workflow_service as _engine

_compile = _engine.compile_definition


def _first_arrival_fires(record):
    compiled = _compile(record)
    return attrs.evolve(compiled, join_branches={join: 1 for join in compiled.join_branches})


_engine.compile_definition = _first_arrival_fires
"""

JOINS = ["parallel-join-once", "parallel-user-task", "parallel-in-a-loop", "loan-approval"]


def test_early_join_fails_the_suite(pg_cluster: Any, tmp_path: Path) -> None:
    from rochallor_server.testing import EngineProcess

    (tmp_path / "sitecustomize.py").write_text(EARLY_JOIN, encoding="utf-8")
    broken = EngineProcess(
        pg_cluster.new_database(),
        tmp_path / "engine.log",
        env={**FAST_ENGINE, "PYTHONPATH": str(tmp_path)},
    )
    broken.start()
    try:
        result = run_driver(
            "--engine-url",
            broken.rest_url,
            "--worker",
            sdk_worker(),
            *_only([*JOINS, "linear-service-tasks"]),
        )
    finally:
        broken.stop()
    verdicts = _table(result)
    assert verdicts == {**dict.fromkeys(JOINS, "FAIL"), "linear-service-tasks": "PASS"}
    assert last_line(result) == f"1 passed, {len(JOINS)} failed"
    assert result.returncode == 1
