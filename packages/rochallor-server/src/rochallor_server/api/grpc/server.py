"""The gRPC listener (grpclib, HTTP/2 cleartext) and its graceful stop.

grpclib's ``Server.close()`` cancels the calls in flight (vmagamedov/grpclib#148), so
:meth:`GrpcListener.stop` first closes the listening socket, turns new calls on existing
connections away with ``UNAVAILABLE``, waits for the calls in flight to finish (bounded by
``grace``) and only then closes the server, cancelling whatever is left.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from grpclib.health.service import Health
from grpclib.reflection.service import ServerReflection
from grpclib.server import Server

from rochallor_server.api.grpc.service import WorkflowEngineService

log = logging.getLogger(__name__)


def make_grpc_server(services: Sequence[Any]) -> Server:
    """A grpclib server for ``services`` plus ``grpc.health.v1`` and server reflection."""
    handlers: list[Any] = [*services, Health()]
    return Server(ServerReflection.extend(handlers))


class GrpcListener:
    """The engine's gRPC endpoint: ``await start(host, port)``, then ``await stop(grace)``."""

    def __init__(self, service: WorkflowEngineService, extra: Sequence[Any] = ()) -> None:
        self.service = service
        self.server = make_grpc_server([service, *extra])
        self.port = 0
        self._started = False

    async def start(self, host: str | None, port: int) -> int:
        """Listen on ``host:port`` (0 = any free port); returns the bound port."""
        await self.server.start(host, port)
        self._started = True
        listener: Any = self.server._server
        for sock in listener.sockets if listener is not None else ():
            self.port = int(sock.getsockname()[1])
            break
        return self.port

    async def stop(self, grace: float = 10.0) -> None:
        """Stop intake, let calls in flight finish for up to ``grace`` seconds, then close."""
        if not self._started:
            return
        self._started = False
        calls = self.service.calls
        calls.draining = True
        listener: Any = self.server._server
        if listener is not None:
            listener.close()  # no new connections; existing ones stay open for the drain
        if calls.count and not await calls.wait_idle(grace):
            log.warning("gRPC: %d call(s) still running after %.1fs", calls.count, grace)
        self.server.close()
        await self.server.wait_closed()
