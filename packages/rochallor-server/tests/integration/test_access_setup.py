"""How access control is set up: safe binding defaults, JWT issuers, protected metrics, TLS,
the keys CLI and the embedded PostgreSQL's own authentication."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import attrs
import pytest
import pytest_asyncio
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from rochallor_server._gen.workflow import v1 as pb
from rochallor_server.app import Server
from rochallor_server.config import Settings
from rochallor_server.errors import ConfigError
from rochallor_server.store.postgres.embedded import PASSWORD_FILE
from rochallor_server.testing import JwtIssuer, TestCluster, make_certificates

from ..support import settings_for


@pytest_asyncio.fixture
async def started() -> AsyncIterator[list[Server]]:
    servers: list[Server] = []
    yield servers
    for server in servers:
        await server.stop()


async def _start(servers: list[Server], settings: Settings) -> Server:
    server = Server(settings)
    servers.append(server)
    await server.start()
    return server


def _unbound(settings: Settings, host: str | None = None) -> Settings:
    return attrs.evolve(settings, http=attrs.evolve(settings.http, host=host))


def _hosts(server: Server) -> set[str]:
    assert server._rest is not None
    return {address[0] for address in server._rest.addresses if isinstance(address, tuple)}


# -- binding -------------------------------------------------------------------------------------


async def test_without_credentials_the_engine_listens_on_loopback_only(
    pg_dsn: str, started: list[Server], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="rochallor_server.app"):
        server = await _start(started, _unbound(settings_for(pg_dsn)))
    assert server.access is not None and not server.access.enforce
    assert _hosts(server) == {"127.0.0.1"}
    assert "no credentials configured; listening on 127.0.0.1 only" in caplog.text


async def test_another_address_without_credentials_needs_an_opt_in(
    pg_dsn: str, started: list[Server], caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigError) as refused:
        await _start(started, _unbound(settings_for(pg_dsn), "0.0.0.0"))
    assert refused.value.variable == "WE_BIND_HOST"
    assert "WE_ALLOW_UNAUTHENTICATED" in refused.value.message
    started.clear()  # stopped by start() itself

    opted_in = settings_for(pg_dsn, WE_ALLOW_UNAUTHENTICATED="true")
    with caplog.at_level(logging.WARNING, logger="rochallor_server.app"):
        server = await _start(started, _unbound(opted_in, "0.0.0.0"))
    assert _hosts(server) == {"0.0.0.0"}
    assert "access control: OFF while listening on 0.0.0.0" in caplog.text


async def test_once_a_key_exists_access_is_enforced_on_every_interface(
    pg_dsn: str, started: list[Server]
) -> None:
    first = await _start(started, settings_for(pg_dsn))
    assert first.access is not None
    _, token = await first.access.create_key(name="admin", role="admin")
    await first.stop()
    started.clear()

    server = await _start(started, _unbound(settings_for(pg_dsn)))
    assert server.access is not None and server.access.enforce
    assert _hosts(server) == {"0.0.0.0"}
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{server.rest_port}/v1/instances"
        async with session.get(url) as response:
            assert response.status == 401
        async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.status == 200


# -- JWT -----------------------------------------------------------------------------------------


async def test_jwt_bearer_tokens_map_a_claim_to_a_role(
    pg_dsn: str, started: list[Server], tmp_path: Path
) -> None:
    issuer = JwtIssuer(tmp_path / "jwks.json")
    settings = settings_for(
        pg_dsn,
        WE_AUTH_JWKS=str(issuer.jwks_path),
        WE_AUTH_JWT_ISSUER=issuer.issuer,
        WE_AUTH_JWT_AUDIENCE=issuer.audience,
        WE_AUTH_JWT_ROLE_CLAIM="rochallor_role",
    )
    server = await _start(started, settings)
    assert server.access is not None and server.access.enforce
    url = f"http://127.0.0.1:{server.rest_port}/v1/instances"
    body = {"definitionId": "nowhere"}

    async def post(token: str) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, json=body, headers=headers) as response,
        ):
            return response.status

    assert await post(issuer.token("ops@corp", rochallor_role="operator")) == 404  # allowed
    assert await post(issuer.token("ops@corp", rochallor_role=["viewer", "operator"])) == 404
    assert await post(issuer.token("eve@corp", rochallor_role="viewer")) == 403
    assert await post(issuer.token("eve@corp", role="admin")) == 401  # not the configured claim
    assert await post(issuer.token("ops@corp", rochallor_role="operator", lifetime=-60)) == 401
    assert await post(issuer.token("ops@corp", rochallor_role="operator", aud="other")) == 401
    stranger = JwtIssuer(tmp_path / "other.json")
    assert await post(stranger.token("ops@corp", rochallor_role="operator")) == 401

    channel = Channel("127.0.0.1", server.grpc_port)
    try:
        stub = pb.WorkflowEngineStub(channel)
        token = issuer.token("viewer@corp", rochallor_role="viewer")
        await stub.list_instances(
            pb.ListInstancesRequest(), metadata={"authorization": f"Bearer {token}"}
        )
        with pytest.raises(GRPCError) as refused:
            await stub.start_instance(
                pb.StartInstanceRequest(definition_id="x"),
                metadata={"authorization": f"Bearer {token}"},
            )
        assert refused.value.status is Status.PERMISSION_DENIED
    finally:
        channel.close()


# -- metrics -------------------------------------------------------------------------------------


async def test_metrics_can_require_a_reading_credential(pg_dsn: str, started: list[Server]) -> None:
    server = await _start(
        started, settings_for(pg_dsn, WE_AUTH_REQUIRED="true", WE_METRICS_AUTH="true")
    )
    assert server.access is not None
    _, viewer = await server.access.create_key(name="prometheus", role="viewer")
    _, worker = await server.access.create_key(name="worker", role="worker")
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            assert response.status == 401
        async with session.get(url, headers={"Authorization": f"Bearer {worker}"}) as response:
            assert response.status == 403
        async with session.get(url, headers={"Authorization": f"Bearer {viewer}"}) as response:
            assert response.status == 200
            assert "workflow_instances_started_total" in await response.text()
        health = f"http://127.0.0.1:{server.rest_port}/healthz"
        async with session.get(health) as response:
            assert response.status == 200  # always open


# -- TLS -----------------------------------------------------------------------------------------


async def test_tls_on_rest_and_mutual_tls_on_grpc(
    pg_dsn: str, started: list[Server], tmp_path: Path
) -> None:
    certs = make_certificates(tmp_path / "certs")
    server = await _start(
        started,
        settings_for(
            pg_dsn,
            WE_TLS_CERT=str(certs.server_cert),
            WE_TLS_KEY=str(certs.server_key),
            WE_TLS_CLIENT_CA=str(certs.ca),
        ),
    )
    trusting = ssl.create_default_context(cafile=str(certs.ca))
    async with aiohttp.ClientSession() as session:
        url = f"https://127.0.0.1:{server.rest_port}/healthz"
        async with session.get(url, ssl=trusting) as response:
            assert response.status == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.get(url)  # the system CAs do not know the engine's CA
        with pytest.raises(aiohttp.ClientError):
            await session.get(f"http://127.0.0.1:{server.rest_port}/healthz")

    def grpc_context(with_client_cert: bool) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(certs.ca))
        context.set_alpn_protocols(["h2"])
        if with_client_cert:
            context.load_cert_chain(str(certs.client_cert), str(certs.client_key))
        return context

    channel = Channel("127.0.0.1", server.grpc_port, ssl=grpc_context(True))
    try:
        reply = await pb.WorkflowEngineStub(channel).list_instances(pb.ListInstancesRequest())
        assert reply.total == 0
    finally:
        channel.close()
    channel = Channel("127.0.0.1", server.grpc_port, ssl=grpc_context(False))
    try:
        # The handshake fails without a client certificate: the call never reaches the engine.
        with pytest.raises((StreamTerminatedError, ssl.SSLError, ConnectionError, GRPCError)):
            await pb.WorkflowEngineStub(channel).list_instances(
                pb.ListInstancesRequest(), timeout=5
            )
    finally:
        channel.close()


def test_tls_settings_are_checked_at_startup(tmp_path: Path) -> None:
    from rochallor_server.config import load_settings

    with pytest.raises(ConfigError) as refused:
        load_settings({"WE_TLS_CERT": str(tmp_path / "missing.pem")})
    assert refused.value.variable == "WE_TLS_KEY"
    with pytest.raises(ConfigError) as refused:
        load_settings({"WE_TLS_CERT": "/nonexistent.pem", "WE_TLS_KEY": "/nonexistent.key"})
    assert refused.value.variable == "WE_TLS_CERT"


# -- the keys CLI --------------------------------------------------------------------------------


def _cli(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WE_", "ROCHALLOR_"))}
    return subprocess.run(
        [sys.executable, "-m", "rochallor_server", "keys", *args],
        env={**env, "WE_POSTGRES_DSN": dsn},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_keys_cli_creates_lists_and_revokes(pg_dsn: str, started: list[Server]) -> None:
    created = _cli(pg_dsn, "create", "--name", "ci worker", "--role", "worker", "--job-type", "a")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    key_id = token.split("_")[1]

    server = await _start(started, settings_for(pg_dsn))
    assert server.access is not None and server.access.enforce  # a key exists now
    url = f"http://127.0.0.1:{server.rest_port}/v1/jobs/poll"
    poll = {"workerId": "w", "jobTypes": ["a"]}

    async def status() -> int:
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, json=poll, headers=headers) as response,
        ):
            return response.status

    assert await status() == 200

    listed = _cli(pg_dsn, "list")
    assert listed.returncode == 0
    assert f"id={key_id} name=ci worker role=worker" in listed.stdout
    assert "jobTypes=a status=active" in listed.stdout
    assert token.split("_", 2)[2] not in listed.stdout  # never the secret

    revoked = _cli(pg_dsn, "revoke", key_id)
    assert revoked.returncode == 0 and f"revoked key {key_id}" in revoked.stdout
    assert "status=revoked" in _cli(pg_dsn, "list").stdout
    # The running engine hears of it through the database at once (well within this bound).
    for _ in range(200):
        if await status() == 401:
            break
        await asyncio.sleep(0.01)
    assert await status() == 401

    unknown = _cli(pg_dsn, "revoke", "000000000000")
    assert unknown.returncode == 1 and "not found" in unknown.stderr
    bad = _cli(pg_dsn, "create", "--name", "x", "--role", "viewer", "--job-type", "a")
    assert bad.returncode == 1 and "worker keys only" in bad.stderr


# -- the embedded PostgreSQL ---------------------------------------------------------------------


async def test_embedded_postgres_needs_the_password_on_tcp(pg_cluster: TestCluster) -> None:
    server = pg_cluster.server
    assert server.port is not None and server.password is not None
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{server.port}/postgres")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(f"postgresql://postgres:guess@127.0.0.1:{server.port}/postgres")
    conn = await asyncpg.connect(server.dsn)
    try:
        rules: list[Any] = await conn.fetch(
            "SELECT type, auth_method FROM pg_hba_file_rules WHERE error IS NULL"
        )
    finally:
        await conn.close()
    assert {(r["type"], r["auth_method"]) for r in rules if r["type"] != "local"} == {
        ("host", "scram-sha-256")
    }
    stored = server.data_dir / PASSWORD_FILE
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stored.stat().st_uid == server.data_dir.stat().st_uid  # the cluster's owner
    assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700  # and so is the socket
