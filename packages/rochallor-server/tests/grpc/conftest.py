"""Fixtures for the gRPC tests: a real engine on a fresh database, reached over HTTP/2."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from grpclib.client import Channel

from rochallor_server._gen.workflow import v1 as pb
from rochallor_server.app import Server

from ..support import PROTO_ROOT, fixture_definition


@pytest.fixture
def grpc_port(server: Server) -> int:
    """The engine's own gRPC listener, as ``app.py`` builds it."""
    return server.grpc_port


@pytest_asyncio.fixture
async def stub(grpc_port: int) -> AsyncIterator[pb.WorkflowEngineStub]:
    channel = Channel("127.0.0.1", grpc_port)
    try:
        yield pb.WorkflowEngineStub(channel)
    finally:
        channel.close()


class Rest:
    """Plain aiohttp calls against the same engine's REST API."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        # JSON is declared on every request, as every Rochallor SDK does.
        async with self.session.request(
            method, self.base + path, json=body, headers={"Content-Type": "application/json"}
        ) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()


@pytest_asyncio.fixture
async def rest(server: Server) -> AsyncIterator[Rest]:
    async with aiohttp.ClientSession() as session:
        yield Rest(session, f"http://127.0.0.1:{server.rest_port}")


@pytest.fixture
def order_fulfilment() -> dict[str, Any]:
    return fixture_definition("order-fulfilment")


def definition_message(document: dict[str, Any]) -> pb.WorkflowDefinition:
    """A JSON definition as a message, through betterproto2's own ProtoJSON reader.

    Independent of ``convert.py`` on purpose: enum names get their prefix, everything else is
    ProtoJSON already (camelCase keys, Struct/Value as plain JSON).
    """
    doc = json.loads(json.dumps(document))
    for step in doc.get("steps", []):
        step["type"] = "STEP_TYPE_" + step["type"]
        for event in step.get("boundaryEvents", []):
            event["type"] = "BOUNDARY_EVENT_TYPE_" + event["type"]
    return pb.WorkflowDefinition.from_dict(doc)


__all__ = ["PROTO_ROOT", "Rest", "definition_message", "fixture_definition"]
