from __future__ import annotations

import attrs
import pytest

from rochallor_sdk import ConfigurationError, Registry, Worker, WorkerSettings, parse_duration
from rochallor_sdk.testing import InMemoryJobClient


def test_defaults() -> None:
    settings = WorkerSettings.from_env({})
    assert settings.engine_url == "http://localhost:8080"
    assert settings.transport == "rest"
    assert settings.parallelism == 16
    assert settings.poll_interval == 0.5
    assert settings.metrics_port is None
    assert settings.worker_id  # generated, non-empty


def test_generated_worker_ids_differ() -> None:
    assert WorkerSettings.from_env({}).worker_id != WorkerSettings.from_env({}).worker_id


def test_from_env_reads_every_documented_variable() -> None:
    env = {
        "ROCHALLOR_WORKER_ENGINE_URL": "grpc://engine:9090",
        "ROCHALLOR_WORKER_TRANSPORT": "GRPC",
        "ROCHALLOR_WORKER_ID": "w-1",
        "ROCHALLOR_WORKER_PARALLELISM": "4",
        "ROCHALLOR_WORKER_POLL_INTERVAL": "250ms",
        "ROCHALLOR_WORKER_LONG_POLL_WAIT": "0",
        "ROCHALLOR_WORKER_REQUEST_TIMEOUT": "3s",
        "ROCHALLOR_WORKER_SHUTDOWN_TIMEOUT": "2m",
        "ROCHALLOR_WORKER_BACKOFF_INITIAL": "0.1",
        "ROCHALLOR_WORKER_BACKOFF_MAX": "1h",
        "ROCHALLOR_WORKER_METRICS_PORT": "9102",
        "ROCHALLOR_WORKER_METRICS_HOST": "127.0.0.1",
        "ROCHALLOR_WORKER_TOKEN": "rk_0123456789ab_secret",
        "ROCHALLOR_WORKER_TLS_CA": "/etc/rochallor/ca.pem",
        "ROCHALLOR_WORKER_TLS_CERT": "/etc/rochallor/worker.pem",
        "ROCHALLOR_WORKER_TLS_KEY": "/etc/rochallor/worker.key",
        "UNRELATED": "x",
    }
    settings = WorkerSettings.from_env(env)
    assert settings == WorkerSettings(
        engine_url="grpc://engine:9090",
        transport="grpc",
        worker_id="w-1",
        parallelism=4,
        poll_interval=0.25,
        long_poll_wait=0.0,
        request_timeout=3.0,
        shutdown_timeout=120.0,
        backoff_initial=0.1,
        backoff_max=3600.0,
        metrics_port=9102,
        metrics_host="127.0.0.1",
        token="rk_0123456789ab_secret",
        tls_ca_file="/etc/rochallor/ca.pem",
        tls_cert_file="/etc/rochallor/worker.pem",
        tls_key_file="/etc/rochallor/worker.key",
    )
    assert "rk_0123456789ab_secret" not in repr(settings)
    assert set(WorkerSettings.env_vars().values()) == {k for k in env if k != "UNRELATED"}


def test_overrides_beat_env_and_none_is_ignored() -> None:
    env = {"ROCHALLOR_WORKER_PARALLELISM": "4", "ROCHALLOR_WORKER_ID": "env-id"}
    settings = WorkerSettings.from_env(env, parallelism=8, worker_id=None)
    assert settings.parallelism == 8
    assert settings.worker_id == "env-id"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ROCHALLOR_WORKER_PARALLELISM", "many"),
        ("ROCHALLOR_WORKER_PARALLELISM", "0"),
        ("ROCHALLOR_WORKER_POLL_INTERVAL", "soon"),
        ("ROCHALLOR_WORKER_POLL_INTERVAL", "0s"),
        ("ROCHALLOR_WORKER_TRANSPORT", "carrier-pigeon"),
        ("ROCHALLOR_WORKER_METRICS_PORT", "70000"),
        ("ROCHALLOR_WORKER_ENGINE_URL", "  "),
    ],
)
def test_invalid_env_values_raise_configuration_error(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError):
        WorkerSettings.from_env({name: value})


def test_unknown_override_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        WorkerSettings.from_env({}, no_such_setting=1)


def test_settings_are_frozen() -> None:
    settings = WorkerSettings.from_env({})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        settings.parallelism = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("5s", 5.0), ("2m", 120.0), ("1h", 3600.0), ("1.5", 1.5), (3, 3.0)],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_worker_constructor_arguments_override_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROCHALLOR_WORKER_PARALLELISM", "4")
    monkeypatch.setenv("ROCHALLOR_WORKER_ID", "from-env")
    registry = Registry()
    worker = Worker(registry, client=InMemoryJobClient(), parallelism=2)
    assert worker.settings.parallelism == 2
    assert worker.worker_id == "from-env"


def test_worker_constructor_arguments_override_given_settings() -> None:
    base = WorkerSettings(worker_id="base", parallelism=3)
    worker = Worker(Registry(), settings=base, worker_id="explicit")
    assert worker.worker_id == "explicit"
    assert worker.settings.parallelism == 3
