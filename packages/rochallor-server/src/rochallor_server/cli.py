"""``rochallor-server``: start the engine with settings from the environment."""

from __future__ import annotations

import argparse
import asyncio
import sys

from rochallor_server import __version__, _keys_cli, app, config, logs, processes
from rochallor_server.errors import ConfigError, RochallorError

_ENV_HELP = """\
environment:
  WE_POSTGRES_DSN          PostgreSQL DSN; unset = embedded PostgreSQL in WE_DATA_DIR
  WE_DATA_DIR              embedded PostgreSQL data dir (~/.local/share/rochallor/pgdata)
  WE_REST_PORT             REST port (8080)
  WE_GRPC_PORT             gRPC port (9090)
  WE_METRICS_PORT          Prometheus port (9091)
  WE_BIND_HOST             interface to listen on (all with credentials, else 127.0.0.1)
  WE_DISPATCH_MODE         polling | kafka_outbox (polling)
  WE_KAFKA_SEED_BROKERS    kafka_outbox: host:port,… of the Kafka brokers
  WE_KAFKA_TRANSPORT       kafka_outbox: plaintext | sasl_scram_tls
  WE_KAFKA_SASL_MECHANISM  SCRAM-SHA-256 | SCRAM-SHA-512 (SCRAM-SHA-512)
  WE_KAFKA_SASL_USERNAME, WE_KAFKA_SASL_PASSWORD  sasl_scram_tls credentials
  WE_KAFKA_TLS_CA_PATH     PEM bundle of the brokers' CA (system roots)
  WE_KAFKA_TLS_SERVER_NAME TLS verification name override
  WE_OUTBOX_BATCH_SIZE     relay rows per cycle (200)
  WE_OUTBOX_LEADER_INTERVAL relay lock attempts and liveness checks (5s)
  WE_LOG_LEVEL             DEBUG | INFO | WARN | ERROR (INFO)
  WE_AUDIT_LOG_ENABLED     write the audit log (true)
  WE_JOB_LEASE             job lease length (30s)
  WE_LEASE_SWEEP_INTERVAL  expired-lease sweep interval (15s)
  WE_TIMER_SWEEP_INTERVAL  due-timer sweep interval (5s)
  WE_MAX_POLL_WAIT         longest long-poll wait a client may ask for (60s)
  DB_MAX_CONNS, DB_MIN_CONNS  connection pool bounds (20, 2)
  WE_PROCESSES             engine processes sharing the ports (SO_REUSEPORT) (1);
                           more than 1 needs WE_POSTGRES_DSN and fixed ports
access control (docs/security.md):
  WE_AUTH_REQUIRED         enforce credentials even before the first key exists (false)
  WE_ALLOW_UNAUTHENTICATED listen beyond loopback without credentials (false)
  WE_AUTH_JWKS             JWKS file or URL for JWT bearer tokens
  WE_AUTH_JWT_ISSUER, WE_AUTH_JWT_AUDIENCE, WE_AUTH_JWT_ROLE_CLAIM (role)
  WE_AUTH_KEY_CACHE_TTL    API key cache lifetime (5s)
  WE_METRICS_AUTH          require a read credential for /metrics (false)
  WE_CORS_ORIGINS          comma-separated browser origins allowed (none)
  WE_TLS_CERT, WE_TLS_KEY  PEM certificate and key: TLS on REST, gRPC and metrics
  WE_TLS_CLIENT_CA         gRPC: require client certificates signed by this CA
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="rochallor-server",
        description="Run the Rochallor workflow engine.",
        epilog=_ENV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", metavar="{keys}")
    _keys_cli.add_parser(commands)
    args = parser.parse_args(argv)
    try:
        settings = config.load_settings()
    except ConfigError as exc:
        sys.stderr.write(f"rochallor-server: invalid configuration: {exc}\n")
        raise SystemExit(2) from None
    logs.configure(settings.log_level)
    if args.command == "keys":
        raise SystemExit(_keys_cli.run(args, settings))
    if settings.processes > 1 and settings.process_index is None:
        raise SystemExit(processes.supervise(settings.processes))
    try:
        import uvloop
    except ImportError:
        run = asyncio.run
    else:
        run = uvloop.run
    try:
        run(app.serve(settings))
    except ConfigError as exc:
        sys.stderr.write(f"rochallor-server: {exc}\n")
        raise SystemExit(2) from None
    except RochallorError as exc:  # a start-up check failed (e.g. a Kafka topic is missing)
        sys.stderr.write(f"rochallor-server: {exc}\n")
        raise SystemExit(1) from None


MODELLER_PORT = 8088


def modeller_main(argv: list[str] | None = None) -> None:
    """``rochallor-modeller``: the browser modeller with the validator only (no engine)."""
    from aiohttp import web

    parser = argparse.ArgumentParser(
        prog="rochallor-modeller",
        description="Serve the workflow modeller with the validator only (no engine needed).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (127.0.0.1)")
    parser.add_argument("--port", type=int, default=MODELLER_PORT, help=f"port ({MODELLER_PORT})")
    parser.add_argument("--version", action="version", version=__version__)
    args = parser.parse_args(argv)
    sys.stdout.write(f"rochallor-modeller: http://{args.host}:{args.port}/ui/\n")
    sys.stdout.flush()
    web.run_app(app.make_offline_app(), host=args.host, port=args.port, print=None)
