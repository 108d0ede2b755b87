"""Worker configuration: one frozen attrs class, loaded from ``ROCHALLOR_WORKER_*``."""

from __future__ import annotations

import os
import re
import secrets
import socket
import ssl
from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs

from rochallor_sdk import _errors, _security

ENV_PREFIX = "ROCHALLOR_WORKER_"

Transport = Literal["rest", "grpc"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: str | float | int) -> float:
    """Seconds from ``"500ms"``, ``"5s"``, ``"2m"``, ``"1h"`` or a bare number of seconds."""
    if isinstance(value, bool):
        raise _errors.ConfigurationError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(value)
    if match is None:
        raise _errors.ConfigurationError(
            f"invalid duration {value!r}; expected e.g. '500ms', '5s', '2m' or a number of seconds"
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def default_worker_id() -> str:
    """``<hostname>-<pid>-<random>``: unique per process, readable in the engine's tables."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise _errors.ConfigurationError(f"{attribute.name} must be > 0, got {value!r}")


def _non_negative(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise _errors.ConfigurationError(f"{attribute.name} must be >= 0, got {value!r}")


def _transport(_inst: object, _attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in ("rest", "grpc"):
        raise _errors.ConfigurationError(f"transport must be 'rest' or 'grpc', got {value!r}")


def _non_empty(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value.strip():
        raise _errors.ConfigurationError(f"{attribute.name} must not be empty")


def _port(_inst: object, _attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and not 0 <= value <= 65535:
        raise _errors.ConfigurationError(f"metrics_port must be 0..65535, got {value!r}")


def _env(name: str, parse: Callable[[str], Any]) -> dict[str, Any]:
    return {"env": ENV_PREFIX + name, "parse": parse}


def _optional_int(value: str) -> int | None:
    return int(value) if value.strip() else None


def _optional_str(value: str) -> str | None:
    return value.strip() or None


@attrs.frozen(kw_only=True)
class WorkerSettings:
    """Everything a :class:`~rochallor_sdk.Worker` needs; durations are seconds.

    Every field can come from an environment variable (``from_env``), named in its metadata
    and in ``docs/sdk.md``.
    """

    #: REST base URL (``http://host:8080``) or gRPC target (``host:9090``, ``grpc://host:9090``).
    engine_url: str = attrs.field(
        default="http://localhost:8080",
        validator=_non_empty,
        metadata=_env("ENGINE_URL", str),
    )
    transport: Transport = attrs.field(
        default="rest", validator=_transport, metadata=_env("TRANSPORT", str.lower)
    )
    #: Lock owner reported to the engine.
    worker_id: str = attrs.field(
        factory=default_worker_id, validator=_non_empty, metadata=_env("ID", str)
    )
    #: Maximum number of jobs handled at once (also the thread-pool size for sync handlers).
    parallelism: int = attrs.field(
        default=16, validator=_positive, metadata=_env("PARALLELISM", int)
    )
    #: Pause after an empty poll when the engine answered at once (no long-poll support).
    poll_interval: float = attrs.field(
        default=0.5, validator=_positive, metadata=_env("POLL_INTERVAL", parse_duration)
    )
    #: How long the engine may hold a poll open waiting for a job (``waitMs``); 0 disables.
    long_poll_wait: float = attrs.field(
        default=20.0, validator=_non_negative, metadata=_env("LONG_POLL_WAIT", parse_duration)
    )
    #: Timeout of one request (added to ``long_poll_wait`` for polls).
    request_timeout: float = attrs.field(
        default=10.0, validator=_positive, metadata=_env("REQUEST_TIMEOUT", parse_duration)
    )
    #: On shutdown, how long in-flight jobs may run before they are handed back.
    shutdown_timeout: float = attrs.field(
        default=30.0, validator=_non_negative, metadata=_env("SHUTDOWN_TIMEOUT", parse_duration)
    )
    #: First delay after a transport error; doubles up to ``backoff_max`` (with jitter).
    backoff_initial: float = attrs.field(
        default=0.5, validator=_positive, metadata=_env("BACKOFF_INITIAL", parse_duration)
    )
    backoff_max: float = attrs.field(
        default=30.0, validator=_positive, metadata=_env("BACKOFF_MAX", parse_duration)
    )
    #: Serve ``/metrics`` and ``/healthz`` on this port (``None``: no HTTP server; 0: any port).
    metrics_port: int | None = attrs.field(
        default=None, validator=_port, metadata=_env("METRICS_PORT", _optional_int)
    )

    #: Interface of the metrics HTTP server.
    metrics_host: str = attrs.field(
        default="0.0.0.0", validator=_non_empty, metadata=_env("METRICS_HOST", str)
    )
    #: API key or JWT for the engine (``None``: ``ROCHALLOR_TOKEN``, else no credential).
    token: str | None = attrs.field(default=None, repr=False, metadata=_env("TOKEN", _optional_str))
    #: PEM file of the CA that signed the engine's certificate (``None``: system CAs).
    tls_ca_file: str | None = attrs.field(default=None, metadata=_env("TLS_CA", _optional_str))
    #: PEM client certificate and key, for engines that require mutual TLS.
    tls_cert_file: str | None = attrs.field(default=None, metadata=_env("TLS_CERT", _optional_str))
    tls_key_file: str | None = attrs.field(default=None, metadata=_env("TLS_KEY", _optional_str))

    def tls_context(self) -> ssl.SSLContext | None:
        """A context from the ``tls_*`` files; ``None`` (decided by the URL and
        ``ROCHALLOR_TLS_*``) when none is set."""
        if self.tls_ca_file is None and self.tls_cert_file is None:
            return None
        return _security.client_ssl_context(
            ca_file=self.tls_ca_file,
            cert_file=self.tls_cert_file,
            key_file=self.tls_key_file,
            http2=self.transport == "grpc",
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> WorkerSettings:
        """Defaults, then ``ROCHALLOR_WORKER_*`` variables, then ``overrides`` (not ``None``)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in attrs.fields(cls):
            name = field.metadata["env"]
            if name in env:
                try:
                    values[field.name] = field.metadata["parse"](env[name])
                except (ValueError, _errors.ConfigurationError) as exc:
                    raise _errors.ConfigurationError(f"{name}: {exc}") from exc
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except TypeError as exc:  # unknown override name
            raise _errors.ConfigurationError(str(exc)) from exc

    @classmethod
    def env_vars(cls) -> dict[str, str]:
        """Field name → environment variable name."""
        return {f.name: f.metadata["env"] for f in attrs.fields(cls)}


__all__ = ["ENV_PREFIX", "Transport", "WorkerSettings", "default_worker_id", "parse_duration"]
