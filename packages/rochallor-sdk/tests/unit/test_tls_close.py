"""A client over TLS closes its socket even when the engine never answers the close."""

from __future__ import annotations

import socket
import ssl
import threading
from asyncio.sslproto import SSLProtocol
from collections.abc import Callable, Iterator

import pytest

from rochallor_sdk import TransportError, create_client
from rochallor_sdk._security import client_ssl_context
from rochallor_server.testing import Certificates


@pytest.fixture
def mute_tls_peer(certs: Certificates) -> Iterator[int]:
    """A TLS server that completes the handshake and then reads nothing, ever: no answer and
    no close_notify, like an engine frozen under load."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.server_cert, certs.server_key)
    context.set_alpn_protocols(["h2", "http/1.1"])
    held: list[socket.socket] = []
    done = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(10)

        def serve() -> None:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)
            held.append(context.wrap_socket(conn, server_side=True))
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


@pytest.mark.parametrize("transport", ["rest", "grpc"])
async def test_close_leaves_no_tls_socket_open_when_the_peer_never_answers(
    certs: Certificates,
    mute_tls_peer: int,
    open_tls_sockets: Callable[[], list[SSLProtocol]],
    transport: str,
) -> None:
    scheme = "https" if transport == "rest" else "grpcs"
    tls = client_ssl_context(ca_file=str(certs.ca), http2=transport == "grpc")
    client = create_client(
        f"{scheme}://127.0.0.1:{mute_tls_peer}", transport, tls=tls, request_timeout=0.5
    )
    with pytest.raises(TransportError):
        await client.list_definitions()
    assert open_tls_sockets(), "the call should have connected"

    await client.close()

    assert open_tls_sockets() == [], "a TLS socket outlived close()"
