"""Graceful stop: calls in flight finish, new calls and connections are turned away."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from rochallor_server._gen.workflow import v1 as pb
from rochallor_server.api.grpc.server import GrpcListener
from rochallor_server.api.grpc.service import WorkflowEngineService
from rochallor_server.app import Server
from rochallor_server.engine.model import Job
from rochallor_server.metrics import Metrics

from ..api.rest_fakes import FakeService


class _SlowService(FakeService):
    """The one fake, slow to answer: a call stays in flight while the listener stops."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()

    async def history(self, instance_id: str) -> list[Any]:
        self.entered.set()
        await asyncio.sleep(1.0)
        return []

    async def poll_jobs(
        self,
        *,
        worker_id: str,
        job_types: Sequence[str],
        max_jobs: int,
        wait_seconds: float,
        encode: Callable[[Job], Any],
    ) -> list[Any]:
        self.entered.set()
        await asyncio.sleep(wait_seconds)
        return []


async def _endpoint(service: _SlowService) -> GrpcListener:
    listener = GrpcListener(WorkflowEngineService(service, Metrics()))
    await listener.start("127.0.0.1", 0)
    return listener


async def test_slow_call_in_flight_completes_and_new_calls_are_unavailable() -> None:
    service = _SlowService()
    listener = await _endpoint(service)
    channel = Channel("127.0.0.1", listener.port)
    stub = pb.WorkflowEngineStub(channel)
    try:
        slow = asyncio.create_task(stub.get_instance_history(pb.GetInstanceHistoryRequest(id="x")))
        await service.entered.wait()
        stopping = asyncio.create_task(listener.stop(grace=10))
        await asyncio.sleep(0.1)
        # An existing connection may still send a call: it is turned away, not cancelled.
        with pytest.raises(GRPCError) as caught:
            await stub.list_definitions(pb.ListDefinitionsRequest())
        assert caught.value.status == Status.UNAVAILABLE
        # The listening socket is closed: new connections are refused.
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", listener.port)
        response = await slow
        assert list(response.executions) == []
        await asyncio.wait_for(stopping, 5)
        assert listener.service.calls.count == 0
    finally:
        channel.close()


async def test_long_poll_in_flight_ends_early_with_an_empty_answer(server: Server) -> None:
    channel = Channel("127.0.0.1", server.grpc_port)
    try:
        started = time.monotonic()
        poll = asyncio.create_task(
            pb.WorkflowEngineStub(channel).poll_jobs(
                pb.PollJobsRequest(worker_id="w", job_types=["t"], wait_ms=30_000)
            )
        )
        await asyncio.sleep(0.3)
        assert not poll.done()
        await server.stop()
        response = await poll
        assert list(response.jobs) == []
        # Answered at shutdown, not after the 30 s the client asked for.
        assert time.monotonic() - started < 5
    finally:
        channel.close()


async def test_grace_timeout_cancels_what_is_left() -> None:
    service = _SlowService()
    listener = await _endpoint(service)
    channel = Channel("127.0.0.1", listener.port)
    try:
        slow = asyncio.create_task(
            pb.WorkflowEngineStub(channel).get_instance_history(
                pb.GetInstanceHistoryRequest(id="x")
            )
        )
        await service.entered.wait()
        await listener.stop(grace=0.1)
        with pytest.raises(GRPCError) as caught:
            await slow
        assert caught.value.status == Status.UNAVAILABLE
    finally:
        channel.close()
