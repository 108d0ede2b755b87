"""Server settings: one frozen tree, loaded once from the environment and validated at startup.

The variable names follow the reference engine (``WE_*``, ``DB_*``); the lease and sweeper
settings are this product's own. Durations accept ``500ms``, ``5s``, ``2m``, ``1h`` or a bare
number of seconds.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Mapping
from pathlib import Path

import attrs

from rochallor_server.errors import ConfigError


class DispatchMode(enum.StrEnum):
    POLLING = "polling"
    KAFKA_OUTBOX = "kafka_outbox"


@attrs.frozen(kw_only=True)
class HttpSettings:
    host: str | None = None
    """``None``: all interfaces when access control is enforced, else loopback only."""
    rest_port: int = 8080
    grpc_port: int = 9090
    metrics_port: int = 9091


@attrs.frozen(kw_only=True)
class DbSettings:
    dsn: str | None = None
    """``None`` starts the embedded PostgreSQL in ``data_dir``."""
    data_dir: Path
    max_conns: int = 20
    min_conns: int = 2


@attrs.frozen(kw_only=True)
class EngineSettings:
    dispatch_mode: DispatchMode = DispatchMode.POLLING
    audit_log_enabled: bool = True
    job_lease_seconds: float = 30.0
    lease_sweep_interval: float = 15.0
    timer_sweep_interval: float = 5.0
    max_poll_wait_seconds: float = 60.0
    max_poll_waiters: int = 1000
    """Long polls that may wait at once; past it a poll answers without waiting."""


class KafkaTransport(enum.StrEnum):
    PLAINTEXT = "plaintext"
    SASL_SCRAM_TLS = "sasl_scram_tls"


@attrs.frozen(kw_only=True)
class KafkaSettings:
    """The broker connection and the outbox relay (``kafka_outbox`` mode only)."""

    seed_brokers: tuple[str, ...]
    transport: KafkaTransport
    sasl_mechanism: str = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: str | None = attrs.field(default=None, repr=False)
    tls_ca_path: Path | None = None
    tls_server_name: str | None = None
    outbox_batch_size: int = 200
    leader_interval: float = 5.0
    """Leadership: try the lock this often, and ping the leader's connection as often."""


@attrs.frozen(kw_only=True)
class AuthSettings:
    required: bool = False
    """Enforce credentials even before any key exists (otherwise: when a key or JWKS exists)."""
    allow_unauthenticated: bool = False
    """Opt-in: listen beyond loopback although no credential is configured."""
    jwks: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_role_claim: str = "role"
    key_cache_ttl: float = 5.0
    metrics_auth: bool = False
    cors_origins: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class TlsSettings:
    cert: Path | None = None
    key: Path | None = None
    client_ca: Path | None = None
    """gRPC: require client certificates signed by this CA."""

    @property
    def enabled(self) -> bool:
        return self.cert is not None


@attrs.frozen(kw_only=True)
class Settings:
    http: HttpSettings
    db: DbSettings
    engine: EngineSettings
    log_level: str = "INFO"
    kafka: KafkaSettings | None = None
    """Set exactly in ``kafka_outbox`` mode."""
    processes: int = 1
    """``WE_PROCESSES``: engine processes sharing the ports (``SO_REUSEPORT``) and the database."""
    process_index: int | None = None
    """Set by the supervisor of ``WE_PROCESSES`` > 1 in each of its processes (0 … N-1)."""
    auth: AuthSettings = AuthSettings()
    tls: TlsSettings = TlsSettings()


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(variable: str, text: str) -> float:
    """Parse ``"5s"``-style durations into seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ConfigError(variable, f"not a duration: {text!r} (use e.g. 500ms, 5s, 2m)")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ConfigError(variable, "must be greater than zero")
    return seconds


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "rochallor" / "pgdata"


class _Env:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def port(self, name: str, default: int) -> int:
        value = self.integer(name, default, minimum=0)
        if value > 65535:
            raise ConfigError(name, f"port out of range: {value}")
        return value

    def integer(self, name: str, default: int, *, minimum: int) -> int:
        text = self.text(name)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(name, f"not an integer: {text!r}") from None
        if value < minimum:
            raise ConfigError(name, f"must be at least {minimum}, got {value}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        text = self.text(name)
        if text is None:
            return default
        lowered = text.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(name, f"not a boolean: {text!r} (use true or false)")

    def duration(self, name: str, default: float) -> float:
        text = self.text(name)
        return default if text is None else parse_duration(name, text)


MAX_PROCESSES = 64


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raise :class:`ConfigError` naming the bad variable."""
    env = _Env(os.environ if environ is None else environ)

    mode_text = env.text("WE_DISPATCH_MODE") or DispatchMode.POLLING.value
    try:
        mode = DispatchMode(mode_text)
    except ValueError:
        choices = ", ".join(m.value for m in DispatchMode)
        raise ConfigError("WE_DISPATCH_MODE", f"{mode_text!r} is not one of {choices}") from None
    kafka = _kafka_settings(env) if mode is DispatchMode.KAFKA_OUTBOX else None

    level = (env.text("WE_LOG_LEVEL") or "INFO").upper()
    if level == "WARNING":
        level = "WARN"
    if level not in {"DEBUG", "INFO", "WARN", "ERROR"}:
        raise ConfigError("WE_LOG_LEVEL", f"{level!r} is not one of DEBUG, INFO, WARN, ERROR")

    min_conns = env.integer("DB_MIN_CONNS", 2, minimum=0)
    max_conns = env.integer("DB_MAX_CONNS", 20, minimum=1)
    if min_conns > max_conns:
        raise ConfigError("DB_MIN_CONNS", f"{min_conns} exceeds DB_MAX_CONNS={max_conns}")

    data_dir_text = env.text("WE_DATA_DIR")
    processes = env.integer("WE_PROCESSES", 1, minimum=1)
    if processes > MAX_PROCESSES:
        raise ConfigError("WE_PROCESSES", f"must be at most {MAX_PROCESSES}, got {processes}")
    index_text = env.text("WE_PROCESS_INDEX")
    process_index = None if index_text is None else env.integer("WE_PROCESS_INDEX", 0, minimum=0)
    if processes > 1:
        _check_processes(env, processes)
    return Settings(
        http=HttpSettings(
            host=env.text("WE_BIND_HOST"),
            rest_port=env.port("WE_REST_PORT", 8080),
            grpc_port=env.port("WE_GRPC_PORT", 9090),
            metrics_port=env.port("WE_METRICS_PORT", 9091),
        ),
        db=DbSettings(
            dsn=env.text("WE_POSTGRES_DSN"),
            data_dir=Path(data_dir_text) if data_dir_text else default_data_dir(),
            max_conns=max_conns,
            min_conns=min_conns,
        ),
        engine=EngineSettings(
            dispatch_mode=mode,
            audit_log_enabled=env.boolean("WE_AUDIT_LOG_ENABLED", True),
            job_lease_seconds=env.duration("WE_JOB_LEASE", 30.0),
            lease_sweep_interval=env.duration("WE_LEASE_SWEEP_INTERVAL", 15.0),
            timer_sweep_interval=env.duration("WE_TIMER_SWEEP_INTERVAL", 5.0),
            max_poll_wait_seconds=env.duration("WE_MAX_POLL_WAIT", 60.0),
            max_poll_waiters=env.integer("WE_MAX_POLL_WAITERS", 1000, minimum=0),
        ),
        log_level=level,
        kafka=kafka,
        processes=processes,
        process_index=process_index,
        auth=_auth_settings(env),
        tls=_tls_settings(env),
    )


def _auth_settings(env: _Env) -> AuthSettings:
    origins = env.text("WE_CORS_ORIGINS") or ""
    return AuthSettings(
        required=env.boolean("WE_AUTH_REQUIRED", False),
        allow_unauthenticated=env.boolean("WE_ALLOW_UNAUTHENTICATED", False),
        jwks=env.text("WE_AUTH_JWKS"),
        jwt_issuer=env.text("WE_AUTH_JWT_ISSUER"),
        jwt_audience=env.text("WE_AUTH_JWT_AUDIENCE"),
        jwt_role_claim=env.text("WE_AUTH_JWT_ROLE_CLAIM") or "role",
        key_cache_ttl=env.duration("WE_AUTH_KEY_CACHE_TTL", 5.0),
        metrics_auth=env.boolean("WE_METRICS_AUTH", False),
        cors_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
    )


def _tls_settings(env: _Env) -> TlsSettings:
    cert, key, client_ca = (env.text(n) for n in ("WE_TLS_CERT", "WE_TLS_KEY", "WE_TLS_CLIENT_CA"))
    if (cert is None) != (key is None):
        raise ConfigError("WE_TLS_CERT" if cert is None else "WE_TLS_KEY", "set both or neither")
    if client_ca is not None and cert is None:
        raise ConfigError("WE_TLS_CLIENT_CA", "needs WE_TLS_CERT and WE_TLS_KEY")
    for name, value in (
        ("WE_TLS_CERT", cert),
        ("WE_TLS_KEY", key),
        ("WE_TLS_CLIENT_CA", client_ca),
    ):
        if value is not None and not Path(value).is_file():
            raise ConfigError(name, f"no such file: {value}")
    return TlsSettings(
        cert=Path(cert) if cert else None,
        key=Path(key) if key else None,
        client_ca=Path(client_ca) if client_ca else None,
    )


_SASL_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


def _kafka_settings(env: _Env) -> KafkaSettings:
    """``kafka_outbox`` mode's settings (``kafka-dispatch.md`` §2)."""
    brokers_text = env.text("WE_KAFKA_SEED_BROKERS")
    brokers = tuple(b.strip() for b in (brokers_text or "").split(",") if b.strip())
    if not brokers:
        raise ConfigError("WE_KAFKA_SEED_BROKERS", "required in kafka_outbox mode (host:port,…)")
    for broker in brokers:
        host, _, port = broker.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) <= 65535:
            raise ConfigError("WE_KAFKA_SEED_BROKERS", f"{broker!r} is not host:port")
    transport_text = env.text("WE_KAFKA_TRANSPORT")
    choices = ", ".join(t.value for t in KafkaTransport)
    if transport_text is None:
        raise ConfigError("WE_KAFKA_TRANSPORT", f"required in kafka_outbox mode ({choices})")
    try:
        transport = KafkaTransport(transport_text)
    except ValueError:
        raise ConfigError(
            "WE_KAFKA_TRANSPORT", f"{transport_text!r} is not one of {choices}"
        ) from None
    mechanism = env.text("WE_KAFKA_SASL_MECHANISM") or "SCRAM-SHA-512"
    username = env.text("WE_KAFKA_SASL_USERNAME")
    password = env.text("WE_KAFKA_SASL_PASSWORD")
    ca_text = env.text("WE_KAFKA_TLS_CA_PATH")
    if transport is KafkaTransport.SASL_SCRAM_TLS:
        if mechanism not in _SASL_MECHANISMS:
            raise ConfigError(
                "WE_KAFKA_SASL_MECHANISM",
                f"{mechanism!r} is not one of {', '.join(_SASL_MECHANISMS)}",
            )
        if username is None:
            raise ConfigError("WE_KAFKA_SASL_USERNAME", "required for sasl_scram_tls")
        if password is None:
            raise ConfigError("WE_KAFKA_SASL_PASSWORD", "required for sasl_scram_tls")
    return KafkaSettings(
        seed_brokers=brokers,
        transport=transport,
        sasl_mechanism=mechanism,
        sasl_username=username,
        sasl_password=password,
        tls_ca_path=Path(ca_text) if ca_text else None,
        tls_server_name=env.text("WE_KAFKA_TLS_SERVER_NAME"),
        outbox_batch_size=env.integer("WE_OUTBOX_BATCH_SIZE", 200, minimum=1),
        leader_interval=env.duration("WE_OUTBOX_LEADER_INTERVAL", 5.0),
    )


def _check_processes(env: _Env, processes: int) -> None:
    """Several processes share one database and fixed ports (``docs/performance.md``)."""
    if env.text("WE_POSTGRES_DSN") is None:
        raise ConfigError(
            "WE_PROCESSES", "more than one process needs WE_POSTGRES_DSN (a shared database)"
        )
    for name, default in (("WE_REST_PORT", 8080), ("WE_GRPC_PORT", 9090)):
        if env.port(name, default) == 0:
            raise ConfigError("WE_PROCESSES", f"more than one process needs a fixed {name}")
    metrics = env.port("WE_METRICS_PORT", 9091)
    if metrics == 0 or metrics + processes - 1 > 65535:
        raise ConfigError(
            "WE_PROCESSES",
            f"more than one process needs WE_METRICS_PORT … +{processes - 1} free and fixed",
        )
