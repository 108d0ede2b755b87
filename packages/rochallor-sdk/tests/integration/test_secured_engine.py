"""The SDK against an engine that requires credentials and speaks TLS only.

The engine runs as an operator would run it: keys made with ``rochallor-server keys create``,
``WE_TLS_*`` certificates from a private CA (mutual TLS on gRPC), access control enforced.
The worker and the admin client get their token and CA from arguments or from the
environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from asyncio.sslproto import SSLProtocol
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rochallor_sdk import ApiError, Registry, Worker, create_client
from rochallor_sdk._security import client_ssl_context
from rochallor_server.testing import Certificates, EngineProcess

from ._support import TRANSPORTS, service_task_flow, settings, wait_for_status


def _create_key(dsn: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WE_", "ROCHALLOR_"))}
    done = subprocess.run(
        [sys.executable, "-m", "rochallor_server", "keys", "create", *args],
        env={**env, "WE_POSTGRES_DSN": dsn},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def secured(pg_dsn: str, tmp_path: Path, certs: Certificates) -> Iterator[EngineProcess]:
    engine = EngineProcess(
        pg_dsn,
        tmp_path / "engine.log",
        env={
            "WE_AUTH_REQUIRED": "true",
            "WE_TLS_CERT": str(certs.server_cert),
            "WE_TLS_KEY": str(certs.server_key),
            "WE_TLS_CLIENT_CA": str(certs.ca),
        },
        tls_ca=certs.ca,
    )
    engine.start()
    try:
        yield engine
    finally:
        assert engine.stop() == 0, engine.log()


def _url(engine: EngineProcess, transport: str) -> str:
    return engine.rest_url if transport == "rest" else f"grpcs://{engine.grpc_target}"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_worker_and_admin_client_over_tls_with_tokens(
    secured: EngineProcess,
    pg_dsn: str,
    certs: Certificates,
    transport: str,
    monkeypatch: pytest.MonkeyPatch,
    open_tls_sockets: Callable[[], list[SSLProtocol]],
) -> None:
    admin_token = _create_key(pg_dsn, "--name", "deployer", "--role", "admin")
    worker_token = _create_key(
        pg_dsn, "--name", "worker", "--role", "worker", "--job-type", "tls-job"
    )
    url = _url(secured, transport)
    http2 = transport == "grpc"
    tls = client_ssl_context(
        ca_file=str(certs.ca),
        cert_file=str(certs.client_cert),
        key_file=str(certs.client_key),
        http2=http2,
    )

    # Without a token the engine refuses; with the wrong role too.
    anonymous = create_client(url, transport, tls=tls)
    try:
        with pytest.raises(ApiError) as refused:
            await anonymous.list_definitions()
        assert refused.value.status in (401, "UNAUTHENTICATED")
    finally:
        await anonymous.close()
    as_worker = create_client(url, transport, tls=tls, token=worker_token)
    try:
        with pytest.raises(ApiError) as refused:
            await as_worker.list_definitions()
        assert refused.value.status in (403, "PERMISSION_DENIED")
    finally:
        await as_worker.close()

    # The admin client takes its token and CA from the environment.
    monkeypatch.setenv("ROCHALLOR_TOKEN", admin_token)
    monkeypatch.setenv("ROCHALLOR_TLS_CA", str(certs.ca))
    monkeypatch.setenv("ROCHALLOR_TLS_CERT", str(certs.client_cert))
    monkeypatch.setenv("ROCHALLOR_TLS_KEY", str(certs.client_key))
    admin = create_client(url, transport)
    registry = Registry()

    @registry.register("tls-job")
    async def handle(ctx: dict[str, Any]) -> dict[str, Any]:
        return {"handled": True}

    # The worker gets its own settings: token and TLS files.
    worker = Worker(
        registry,
        settings=settings(
            engine_url=url,
            transport=transport,
            token=worker_token,
            tls_ca_file=str(certs.ca),
            tls_cert_file=str(certs.client_cert),
            tls_key_file=str(certs.client_key),
        ),
    )
    try:
        await admin.upload_definition(service_task_flow("SDK::tls", "tls-job"))
        instance = await admin.start_instance("SDK::tls", variables={"n": 1})
        async with worker:
            done = await wait_for_status(admin, instance["id"])
        assert done["status"] == "COMPLETED"
        assert done["variables"] == {"n": 1, "handled": True}
    finally:
        await admin.close()
    # Every client is closed: none of their TLS sockets is left to the garbage collector.
    assert open_tls_sockets() == []
