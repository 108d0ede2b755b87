"""Credentials and TLS for the clients: a bearer token and an SSL context.

The token is an API key (``rk_…``) or a JWT, sent as ``Authorization: Bearer <token>`` on REST
and as ``authorization`` metadata on gRPC. When not passed explicitly it is read from
``ROCHALLOR_TOKEN``. TLS is used for ``https://`` (REST) and ``grpcs://`` (gRPC) targets, or
whenever a context is given; ``ROCHALLOR_TLS_CA``, ``ROCHALLOR_TLS_CERT`` and
``ROCHALLOR_TLS_KEY`` name PEM files for a private CA and a client certificate (mutual TLS).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping

from rochallor_sdk import _errors

TOKEN_ENV = "ROCHALLOR_TOKEN"
CA_ENV = "ROCHALLOR_TLS_CA"
CERT_ENV = "ROCHALLOR_TLS_CERT"
KEY_ENV = "ROCHALLOR_TLS_KEY"


def resolve_token(token: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """``token``, else ``ROCHALLOR_TOKEN``, else ``None`` (no credential)."""
    if token:
        return token
    value = (os.environ if environ is None else environ).get(TOKEN_ENV, "").strip()
    return value or None


def client_ssl_context(
    *,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    http2: bool = False,
) -> ssl.SSLContext:
    """A verifying client context: system CAs, or ``ca_file``; a client certificate if given."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
        if cert_file is not None:
            context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise _errors.ConfigurationError(f"cannot load TLS files: {exc}") from exc
    if http2:
        context.set_alpn_protocols(["h2"])
    return context


def resolve_tls(
    tls: ssl.SSLContext | bool | None,
    *,
    secure_scheme: bool,
    http2: bool,
    environ: Mapping[str, str] | None = None,
) -> ssl.SSLContext | None:
    """The context to use: ``tls`` if a context; one built from the ``ROCHALLOR_TLS_*`` files
    when TLS is wanted (``tls=True``, an ``https``/``grpcs`` target, or a CA in the
    environment); ``None`` for cleartext."""
    if isinstance(tls, ssl.SSLContext):
        return tls
    env = os.environ if environ is None else environ
    ca, cert, key = (env.get(n, "").strip() or None for n in (CA_ENV, CERT_ENV, KEY_ENV))
    wanted = tls is True or (tls is None and (secure_scheme or ca is not None))
    if not wanted:
        return None
    return client_ssl_context(ca_file=ca, cert_file=cert, key_file=key, http2=http2)


def auth_headers(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}
