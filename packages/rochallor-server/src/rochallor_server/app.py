"""Composition root and process lifecycle.

:class:`Server` builds every resource (database, pool, services, listeners, background tasks)
and owns the shutdown order: stop intake (REST, gRPC), stop background tasks, close the pool,
stop the embedded database.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
from collections.abc import Awaitable
from typing import Any, TypeVar

import asyncpg
from aiohttp import web

from rochallor_server import auth, tls
from rochallor_server.api.grpc.server import GrpcListener
from rochallor_server.api.grpc.service import WorkflowEngineService
from rochallor_server.api.rest import app as rest_app
from rochallor_server.api.rest.validation import VALIDATE_PATH, validate_definition
from rochallor_server.config import DispatchMode, KafkaSettings, Settings
from rochallor_server.engine import limits
from rochallor_server.engine.clock import SystemClock, UlidGenerator
from rochallor_server.errors import ConfigError, StorageError
from rochallor_server.metrics import Metrics
from rochallor_server.service.workflow_service import DispatchEncoder, WorkflowService
from rochallor_server.store.postgres import PostgresStore, migrate
from rochallor_server.store.postgres import pool as pg_pool
from rochallor_server.store.postgres.api_keys import PostgresKeyStore, RevocationListener
from rochallor_server.store.postgres.embedded import EmbeddedPostgres
from rochallor_server.sweepers.base import PeriodicTask
from rochallor_server.sweepers.chains import chain_sweeper
from rochallor_server.sweepers.leases import lease_sweeper
from rochallor_server.sweepers.timers import timer_sweeper
from rochallor_server.ui import UI_PREFIX, add_ui_routes

log = logging.getLogger(__name__)
_T = TypeVar("_T")


def _redact(dsn: str) -> str:
    """Hide a password in a DSN before logging it."""
    if "@" not in dsn or "://" not in dsn:
        return dsn
    scheme, rest = dsn.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else dsn


class Server:
    """One engine process. ``await start()`` then ``await stop()``; ports are read after start."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics(polling=settings.engine.dispatch_mode is DispatchMode.POLLING)
        self.embedded: EmbeddedPostgres | None = None
        self.dsn: str | None = None
        self.pool: asyncpg.Pool[Any] | None = None
        self.store: PostgresStore | None = None
        self.service: WorkflowService | None = None
        self.sweepers: list[PeriodicTask] = []
        self.producer: Any = None  # kafka_outbox mode: the relay's AIOKafkaProducer
        self.relay: Any = None  # kafka_outbox mode: the OutboxRelay
        self.access: auth.AccessControl | None = None
        self._revocations: RevocationListener | None = None
        self._rest: web.AppRunner | None = None
        self._metrics: web.AppRunner | None = None
        self._grpc: GrpcListener | None = None
        self.rest_port = 0
        self.grpc_port = 0
        self.metrics_port = 0

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        settings = self.settings
        if settings.db.dsn is None:
            self.embedded = EmbeddedPostgres(settings.db.data_dir)
            self.dsn = await asyncio.to_thread(self.embedded.start)
            log.info("database: embedded PostgreSQL, data in %s", settings.db.data_dir)
        else:
            self.dsn = settings.db.dsn
            log.info("database: %s", _redact(self.dsn))
        self.pool = await pg_pool.create_pool(
            self.dsn, min_size=settings.db.min_conns, max_size=settings.db.max_conns
        )
        async with self.pool.acquire() as conn:
            await migrate.migrate(conn)
        self.store = PostgresStore(self.pool)
        dispatch: DispatchEncoder | None = None
        if settings.kafka is not None:
            dispatch = await self._start_kafka(settings.kafka)
        self.service = WorkflowService(
            self.store,
            settings=settings.engine,
            metrics=self.metrics,
            clock=SystemClock(),
            ids=UlidGenerator(),
            dispatch=dispatch,
            dispatched=None if self.relay is None else self.relay.wake,
        )
        if self.relay is not None:
            self.relay.start()
        self.sweepers = [
            lease_sweeper(self.service, self.store, settings.engine.lease_sweep_interval),
            timer_sweeper(self.service, self.store, settings.engine.timer_sweep_interval),
            # chained starts a crash left undone: as often as timers are swept
            chain_sweeper(self.service, settings.engine.timer_sweep_interval),
        ]
        for sweeper in self.sweepers:
            sweeper.start()

        self.access = await self._access_control()
        host = self._bind_host(self.access.enforce)
        # WE_PROCESSES > 1: the processes share the REST and gRPC ports; each has its metrics.
        reuse_port = settings.processes > 1
        metrics_port = settings.http.metrics_port
        if settings.process_index is not None and metrics_port:
            metrics_port += settings.process_index
        certificate = (settings.tls.cert, settings.tls.key)
        rest_tls = tls.server_context(*certificate, grpc=False)
        metrics_access = self.access if settings.auth.metrics_auth else None
        self._metrics = web.AppRunner(
            rest_app.make_metrics_app(self.metrics, metrics_access), access_log=None
        )
        await self._metrics.setup()
        metrics_site = web.TCPSite(self._metrics, host, metrics_port, ssl_context=rest_tls)
        await _listen(metrics_site.start(), "WE_METRICS_PORT", host, metrics_port)
        self.metrics_port = _bound_port(self._metrics)

        self._grpc = GrpcListener(
            WorkflowEngineService(self.service, self.metrics), access=self.access
        )
        self.grpc_port = await _listen(
            self._grpc.start(
                host,
                settings.http.grpc_port,
                ssl_context=tls.server_context(*certificate, settings.tls.client_ca, grpc=True),
                reuse_port=reuse_port,
            ),
            "WE_GRPC_PORT",
            host,
            settings.http.grpc_port,
        )

        # REST last: a 2xx from /healthz means the whole engine is ready.
        rest = rest_app.make_app(
            self.metrics,
            self.service,
            access=self.access,
            cors_origins=settings.auth.cors_origins,
        )
        add_ui_routes(rest)  # the browser UI at /ui/, beside the REST API
        self._rest = web.AppRunner(
            rest,
            access_log=None,
            shutdown_timeout=10,
            # Long request lines reach the application, which answers them with a JSON error
            # naming the field (aiohttp's own answer past 8 KiB would be plain text).
            max_line_size=limits.MAX_REQUEST_LINE_BYTES,
            # A client that hangs up cancels its handler: a long poll whose worker is gone must
            # not go on to claim jobs nobody will receive. Each call is one transaction, so a
            # cancelled call rolls back whole.
            handler_cancellation=True,
        )
        await self._rest.setup()
        site = web.TCPSite(
            self._rest,
            host,
            settings.http.rest_port,
            ssl_context=rest_tls,
            reuse_port=reuse_port,
        )
        await _listen(site.start(), "WE_REST_PORT", host, settings.http.rest_port)
        self.rest_port = _bound_port(self._rest)
        log.info(
            "listening%s: REST %s:%d, gRPC %s:%d, metrics %s:%d",
            " (TLS)" if rest_tls is not None else "",
            host,
            self.rest_port,
            host,
            self.grpc_port,
            host,
            self.metrics_port,
        )

    async def _start_kafka(self, kafka: KafkaSettings) -> DispatchEncoder:
        """``kafka_outbox`` mode's start-up checks, producer and relay (``kafka-dispatch.md``
        §3); any failure stops the start naming what is missing."""
        # Imported here: polling mode never loads the Kafka client.
        from rochallor_server.dispatch.kafka_outbox import event, producer, relay

        assert self.store is not None
        job_types = await self.store.service_task_job_types()
        if not await self.store.outbox_table_exists():
            raise StorageError(
                "kafka_outbox: table dispatch_outbox missing (migration not applied)"
            )
        self.producer = await producer.start_producer(kafka)
        await producer.check_topics(kafka, job_types)
        log.info(
            "dispatch: kafka_outbox via %s (%d job type topics checked)",
            ",".join(kafka.seed_brokers),
            len(job_types),
        )
        self.relay = relay.OutboxRelay(
            self.store,
            self.producer,
            metrics=self.metrics,
            batch_size=kafka.outbox_batch_size,
            audit=self.settings.engine.audit_log_enabled,
            leader_interval=kafka.leader_interval,
        )
        return event.encode

    async def _access_control(self) -> auth.AccessControl:
        """Enforced when required, when a JWKS is configured, or when any API key exists."""
        assert self.pool is not None and self.dsn is not None
        settings = self.settings.auth
        keys = PostgresKeyStore(self.pool)
        verifier = None
        if settings.jwks is not None:
            verifier = auth.JwtVerifier(
                auth.JwtSettings(
                    jwks=settings.jwks,
                    issuer=settings.jwt_issuer,
                    audience=settings.jwt_audience,
                    role_claim=settings.jwt_role_claim,
                )
            )
        enforce = settings.required or verifier is not None or await keys.has_active_keys()
        access = auth.AccessControl(
            keys, enforce=enforce, jwt=verifier, cache_ttl=settings.key_cache_ttl
        )
        self._revocations = RevocationListener(self.dsn, access)
        self._revocations.start()
        if enforce:
            log.info("access control: enforced (API keys%s)", " and JWT" if verifier else "")
        return access

    def _bind_host(self, enforced: bool) -> str:
        """Loopback only unless credentials are enforced or the operator opted in."""
        host = self.settings.http.host
        if enforced:
            return host or "0.0.0.0"
        if host is None:
            log.warning(
                "access control: no credentials configured; listening on 127.0.0.1 only "
                "(create a key with `rochallor-server keys create`, see docs/security.md)"
            )
            return "127.0.0.1"
        if _is_loopback(host):
            log.warning("access control: no credentials configured; listening on %s", host)
            return host
        if not self.settings.auth.allow_unauthenticated:
            raise ConfigError(
                "WE_BIND_HOST",
                f"{host} is not a loopback address and no credentials are configured; create "
                "an API key, or set WE_ALLOW_UNAUTHENTICATED=true to accept anyone",
            )
        log.warning(
            "access control: OFF while listening on %s (WE_ALLOW_UNAUTHENTICATED=true): anyone "
            "who can reach this address can do anything",
            host,
        )
        return host

    async def stop(self) -> None:
        if self.service is not None:
            self.service.begin_shutdown()  # waiting long polls answer now, intake drains fast
        if self._rest is not None:
            await self._rest.cleanup()
            self._rest = None
        if self._grpc is not None:
            await self._grpc.stop(grace=10.0)
            self._grpc = None
        for sweeper in self.sweepers:
            await sweeper.stop()
        self.sweepers = []
        if self._revocations is not None:
            await self._revocations.stop()
            self._revocations = None
        if self.service is not None:
            await self.service.drain()
        if self.relay is not None:
            await self.relay.stop()
            self.relay = None
        if self.producer is not None:
            await self.producer.stop()  # flushes what is in flight
            self.producer = None
        if self._metrics is not None:
            await self._metrics.cleanup()
            self._metrics = None
        if self.store is not None:
            await self.store.close()
            self.store = None
        if self.pool is not None:
            await self.pool.close()
            self.pool = None
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
            self.embedded = None
        log.info("stopped")


async def _listen(opening: Awaitable[_T], variable: str, host: str, port: int) -> _T:
    """Open a listener; a port that cannot be bound is a configuration error naming its variable."""
    try:
        return await opening
    except OSError as exc:
        raise ConfigError(
            variable, f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from exc


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    raise RuntimeError("listener has no TCP address")


async def serve(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM, then stop in order."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = Server(settings)
    await server.start()
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        with contextlib.suppress(Exception):
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        await server.stop()


def make_offline_app() -> web.Application:
    """``rochallor-modeller``: the UI at ``/ui/`` and ``POST /v1/definitions/validate`` only.

    No PostgreSQL and no definition store: definitions are imported and exported as files; the
    UI notices that no engine answers and hides publishing and the engine browser.
    """
    offline = web.Application(client_max_size=rest_app.DEFAULT_CLIENT_MAX_SIZE)

    async def root(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"{UI_PREFIX}/")

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(status=200)

    offline.router.add_get("/", root)
    offline.router.add_get("/healthz", healthz)
    offline.router.add_post(VALIDATE_PATH, validate_definition)
    add_ui_routes(offline)
    return offline
