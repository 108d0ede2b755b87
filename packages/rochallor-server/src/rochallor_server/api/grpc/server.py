"""The gRPC listener (grpclib, HTTP/2 cleartext) and its graceful stop.

grpclib's ``Server.close()`` cancels the calls in flight (vmagamedov/grpclib#148), so
:meth:`GrpcListener.stop` first closes the listening socket, turns new calls on existing
connections away with ``UNAVAILABLE``, waits for the calls in flight to finish (bounded by
``grace``) and only then closes the server, cancelling whatever is left.

Server reflection serves full file descriptors (``grpcurl list``, ``describe`` and calls built
from the reflected descriptors): see :func:`reflection_pool`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import weakref
from collections.abc import Sequence
from typing import Any

from google.protobuf.descriptor_pb2 import FileDescriptorProto
from google.protobuf.descriptor_pool import Default, DescriptorPool
from grpclib.const import Status
from grpclib.encoding.proto import ProtoCodec
from grpclib.exceptions import GRPCError
from grpclib.health.service import Health
from grpclib.protocol import H2Protocol
from grpclib.reflection.service import ServerReflection
from grpclib.server import Server

from rochallor_server import auth
from rochallor_server._gen.google_proto_descriptor_pool import (
    default_google_proto_descriptor_pool,
)
from rochallor_server.api.grpc import auth as grpc_auth
from rochallor_server.api.grpc.service import WorkflowEngineService
from rochallor_server.engine import limits

log = logging.getLogger(__name__)

# The reflection services themselves (grpclib registers both in protobuf's default pool).
_REFLECTION_SERVICES = (
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
)


def _service_name(service: Any) -> str:
    """The full service name, e.g. ``workflow.v1.WorkflowEngine``, from a handler's method paths."""
    path: str = next(iter(service.__mapping__()))
    return path.split("/")[1]


def reflection_pool(services: Sequence[Any]) -> DescriptorPool:
    """A descriptor pool holding the proto files that declare ``services``, with their imports.

    The engine's descriptors come from the generated package's own pool (the server's stubs are
    generated with ``google_protobuf_descriptors``); grpclib's health and reflection protos live
    in protobuf's default pool. Reflection answers from this one pool, so every listed service
    (and the reflection service) can be described and its messages built by the client.
    """
    sources = (default_google_proto_descriptor_pool, Default())
    pool = DescriptorPool()
    added: set[str] = set()

    def add(file: Any) -> None:
        if file.name in added:
            return
        for dependency in file.dependencies:
            add(dependency)
        proto = FileDescriptorProto()
        file.CopyToProto(proto)
        pool.AddSerializedFile(proto.SerializeToString())
        added.add(file.name)

    for name in [*(_service_name(s) for s in services), *_REFLECTION_SERVICES]:
        for source in sources:
            try:
                file = source.FindFileContainingSymbol(name)
            except KeyError:
                continue
            add(file)
            break
        else:
            log.warning("gRPC reflection: no descriptor for %s; it cannot be described", name)
    return pool


class _LimitedCodec(ProtoCodec):
    """grpclib's codec, refusing request messages past the REST body limit before decoding."""

    def decode(self, data: bytes, message_type: Any) -> Any:
        if len(data) > limits.MAX_REQUEST_BYTES:
            raise GRPCError(
                Status.RESOURCE_EXHAUSTED,
                f"request message exceeds {limits.MAX_REQUEST_BYTES} bytes",
            )
        try:
            return super().decode(data, message_type)
        except RecursionError:
            raise GRPCError(Status.INVALID_ARGUMENT, "request message nests too deeply") from None


class _Server(Server):
    """grpclib's server, able to close the client connections it accepted.

    From Python 3.12 on, ``asyncio.Server.wait_closed()`` waits until every client connection
    is closed, and grpclib never closes them: without this, a stop would wait for the clients
    to hang up. (``_protocol_factory`` is grpclib's per-connection hook.)
    """

    def __init__(self, handlers: Sequence[Any]) -> None:
        super().__init__(handlers, codec=_LimitedCodec())
        self._protocols: weakref.WeakSet[H2Protocol] = weakref.WeakSet()

    def _protocol_factory(self) -> H2Protocol:
        protocol = super()._protocol_factory()
        self._protocols.add(protocol)
        return protocol

    def close_connections(self) -> None:
        for protocol in list(self._protocols):
            connection = getattr(protocol, "connection", None)
            if connection is not None:
                connection.close()


def make_grpc_server(services: Sequence[Any]) -> _Server:
    """A grpclib server for ``services`` plus ``grpc.health.v1`` and server reflection."""
    handlers: list[Any] = [*services, Health()]
    return _Server(ServerReflection.extend(handlers, pool=reflection_pool(handlers)))


class GrpcListener:
    """The engine's gRPC endpoint: ``await start(host, port)``, then ``await stop(grace)``."""

    def __init__(
        self,
        service: WorkflowEngineService,
        extra: Sequence[Any] = (),
        *,
        access: auth.AccessControl | None = None,
    ) -> None:
        self.service = service
        self.server = make_grpc_server([service, *extra])
        if access is not None:
            grpc_auth.install(self.server, access)
        self.port = 0
        self._started = False

    async def start(
        self,
        host: str | None,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
    ) -> int:
        """Listen on ``host:port`` (0 = any free port); returns the bound port.

        ``reuse_port``: share the port with other processes (``SO_REUSEPORT``)."""
        await self.server.start(host, port, ssl=ssl_context, reuse_port=reuse_port)
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
        self.server.close()  # cancels what is still running; those calls answer UNAVAILABLE
        handlers: Any = self.server._handlers
        pending = [asyncio.ensure_future(h.wait_closed()) for h in list(handlers)]
        if pending:
            await asyncio.wait(pending)
        self.server.close_connections()
        await self.server.wait_closed()
