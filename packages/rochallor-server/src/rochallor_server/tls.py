"""TLS contexts for the listeners, from ``WE_TLS_CERT`` / ``WE_TLS_KEY`` (PEM files).

gRPC negotiates HTTP/2 through ALPN; with ``WE_TLS_CLIENT_CA`` it also requires a client
certificate signed by that CA (mutual TLS). REST and metrics use the same certificate.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from rochallor_server.errors import ConfigError


def server_context(
    cert: Path | None, key: Path | None, client_ca: Path | None = None, *, grpc: bool
) -> ssl.SSLContext | None:
    """``None`` without a certificate (cleartext)."""
    if cert is None or key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("WE_TLS_CERT", f"cannot load the certificate and key: {exc}") from None
    if grpc:
        context.set_alpn_protocols(["h2"])
        if client_ca is not None:
            try:
                context.load_verify_locations(cafile=client_ca)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError("WE_TLS_CLIENT_CA", f"cannot load: {exc}") from None
            context.verify_mode = ssl.CERT_REQUIRED
    return context
