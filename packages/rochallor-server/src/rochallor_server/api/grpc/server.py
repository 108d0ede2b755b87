"""The gRPC listener (grpclib, HTTP/2 cleartext)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grpclib.health.service import Health
from grpclib.reflection.service import ServerReflection
from grpclib.server import Server


def make_grpc_server(services: Sequence[Any]) -> Server:
    handlers: list[Any] = [*services, Health()]
    return Server(ServerReflection.extend(handlers))
