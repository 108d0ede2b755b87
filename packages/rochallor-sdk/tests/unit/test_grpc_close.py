"""A gRPC client over TLS closes its socket even when the engine never answers the close."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rochallor_sdk import GrpcClient, TransportError
from rochallor_sdk._security import client_ssl_context
from rochallor_sdk.client._grpc import _transport_of
from rochallor_server.testing import Certificates, make_certificates


@pytest.fixture
def certs(tmp_path: Path) -> Certificates:
    return make_certificates(tmp_path / "certs")


@pytest.fixture
def mute_tls_peer(certs: Certificates) -> Iterator[int]:
    """A TLS server that completes the handshake (ALPN h2) and then reads nothing, ever:
    no HTTP/2 answer and no close_notify, like an engine frozen under load."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.server_cert, certs.server_key)
    context.set_alpn_protocols(["h2"])
    held: list[socket.socket] = []
    done = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(10)

        def serve() -> None:
            try:
                conn, _ = listener.accept()
                held.append(context.wrap_socket(conn, server_side=True))
            except OSError:
                pass
            done.wait()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield int(listener.getsockname()[1])
        finally:
            done.set()
            thread.join(10)
            for conn in held:
                conn.close()


async def test_close_aborts_a_tls_connection_whose_peer_never_answers(
    certs: Certificates, mute_tls_peer: int
) -> None:
    tls = client_ssl_context(ca_file=str(certs.ca), http2=True)
    client = GrpcClient(f"grpcs://127.0.0.1:{mute_tls_peer}", tls=tls, request_timeout=0.5)
    with pytest.raises(TransportError):
        await client.list_definitions()
    assert client._channel is not None
    transport = _transport_of(client._channel)
    assert transport is not None, "the call should have connected"
    sock = transport.get_extra_info("socket")
    assert sock.fileno() != -1

    await client.close()

    assert sock.fileno() == -1, "the socket outlived close()"
