from __future__ import annotations

import asyncio
import gc
import os
from asyncio.sslproto import SSLProtocol
from collections.abc import Callable
from pathlib import Path

import pytest

from rochallor_server.testing import Certificates, make_certificates

# Tests must not pick up a developer's worker configuration.
for _name in [n for n in os.environ if n.startswith("ROCHALLOR_")]:
    del os.environ[_name]


@pytest.fixture
def certs(tmp_path: Path) -> Certificates:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""
    return make_certificates(tmp_path / "certs")


@pytest.fixture
def open_tls_sockets() -> Callable[[], list[SSLProtocol]]:
    """The TLS connections of the running loop whose socket is still open."""

    def collect() -> list[SSLProtocol]:
        loop = asyncio.get_running_loop()
        return [
            obj
            for obj in gc.get_objects()
            if isinstance(obj, SSLProtocol) and obj._loop is loop and obj._transport is not None
        ]

    return collect
