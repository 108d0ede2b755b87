from __future__ import annotations

from pathlib import Path

import pytest

from rochallor_server.config import DispatchMode, load_settings, parse_duration
from rochallor_server.errors import ConfigError


def test_defaults_match_the_reference_ports() -> None:
    settings = load_settings({})
    assert (settings.http.rest_port, settings.http.grpc_port, settings.http.metrics_port) == (
        8080,
        9090,
        9091,
    )
    assert settings.db.dsn is None
    assert settings.engine.dispatch_mode is DispatchMode.POLLING
    assert settings.engine.job_lease_seconds == 30.0
    assert settings.engine.lease_sweep_interval == 15.0
    assert settings.engine.timer_sweep_interval == 5.0
    assert settings.engine.audit_log_enabled is True


def test_environment_overrides() -> None:
    settings = load_settings(
        {
            "WE_POSTGRES_DSN": "postgresql://u:p@db/x",
            "WE_REST_PORT": "18080",
            "WE_AUDIT_LOG_ENABLED": "false",
            "WE_JOB_LEASE": "1500ms",
            "WE_DATA_DIR": "/var/lib/rochallor",
            "DB_MAX_CONNS": "7",
            "WE_LOG_LEVEL": "debug",
        }
    )
    assert settings.db.dsn == "postgresql://u:p@db/x"
    assert settings.http.rest_port == 18080
    assert settings.engine.audit_log_enabled is False
    assert settings.engine.job_lease_seconds == 1.5
    assert settings.db.data_dir == Path("/var/lib/rochallor")
    assert settings.db.max_conns == 7
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"WE_REST_PORT": "http"}, "WE_REST_PORT"),
        ({"WE_GRPC_PORT": "70000"}, "WE_GRPC_PORT"),
        ({"WE_DISPATCH_MODE": "carrier-pigeon"}, "WE_DISPATCH_MODE"),
        ({"WE_DISPATCH_MODE": "kafka_outbox"}, "WE_KAFKA_SEED_BROKERS"),
        (
            {"WE_DISPATCH_MODE": "kafka_outbox", "WE_KAFKA_SEED_BROKERS": "broker"},
            "WE_KAFKA_SEED_BROKERS",
        ),
        (
            {"WE_DISPATCH_MODE": "kafka_outbox", "WE_KAFKA_SEED_BROKERS": "b:9092"},
            "WE_KAFKA_TRANSPORT",
        ),
        (
            {
                "WE_DISPATCH_MODE": "kafka_outbox",
                "WE_KAFKA_SEED_BROKERS": "b:9092",
                "WE_KAFKA_TRANSPORT": "ssl",
            },
            "WE_KAFKA_TRANSPORT",
        ),
        (
            {
                "WE_DISPATCH_MODE": "kafka_outbox",
                "WE_KAFKA_SEED_BROKERS": "b:9092",
                "WE_KAFKA_TRANSPORT": "sasl_scram_tls",
                "WE_KAFKA_SASL_USERNAME": "u",
                "WE_KAFKA_SASL_PASSWORD": "p",
                "WE_KAFKA_SASL_MECHANISM": "PLAIN",
            },
            "WE_KAFKA_SASL_MECHANISM",
        ),
        (
            {
                "WE_DISPATCH_MODE": "kafka_outbox",
                "WE_KAFKA_SEED_BROKERS": "b:9092",
                "WE_KAFKA_TRANSPORT": "sasl_scram_tls",
            },
            "WE_KAFKA_SASL_USERNAME",
        ),
        (
            {
                "WE_DISPATCH_MODE": "kafka_outbox",
                "WE_KAFKA_SEED_BROKERS": "b:9092",
                "WE_KAFKA_TRANSPORT": "plaintext",
                "WE_OUTBOX_BATCH_SIZE": "0",
            },
            "WE_OUTBOX_BATCH_SIZE",
        ),
        ({"WE_AUDIT_LOG_ENABLED": "perhaps"}, "WE_AUDIT_LOG_ENABLED"),
        ({"WE_JOB_LEASE": "soon"}, "WE_JOB_LEASE"),
        ({"WE_LOG_LEVEL": "LOUD"}, "WE_LOG_LEVEL"),
        ({"DB_MAX_CONNS": "0"}, "DB_MAX_CONNS"),
        ({"DB_MIN_CONNS": "9", "DB_MAX_CONNS": "3"}, "DB_MIN_CONNS"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert info.value.variable == variable
    assert variable in str(info.value)


@pytest.mark.parametrize(
    ("text", "seconds"), [("5s", 5.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0), ("7", 7.0)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration("X", text) == seconds


def test_kafka_outbox_settings() -> None:
    settings = load_settings(
        {
            "WE_DISPATCH_MODE": "kafka_outbox",
            "WE_KAFKA_SEED_BROKERS": " a:9092 , b:9093,",
            "WE_KAFKA_TRANSPORT": "plaintext",
            "WE_OUTBOX_BATCH_SIZE": "50",
        }
    )
    assert settings.kafka is not None
    assert settings.kafka.seed_brokers == ("a:9092", "b:9093")
    assert settings.kafka.outbox_batch_size == 50
    assert load_settings({}).kafka is None


def test_processes_need_a_shared_database_and_fixed_ports() -> None:
    dsn = {"WE_POSTGRES_DSN": "postgresql://db/engine"}
    assert load_settings({}).processes == 1
    settings = load_settings({**dsn, "WE_PROCESSES": "4", "WE_PROCESS_INDEX": "3"})
    assert (settings.processes, settings.process_index) == (4, 3)
    for env, problem in [
        ({"WE_PROCESSES": "2"}, "WE_POSTGRES_DSN"),
        ({**dsn, "WE_PROCESSES": "2", "WE_REST_PORT": "0"}, "fixed WE_REST_PORT"),
        ({**dsn, "WE_PROCESSES": "2", "WE_GRPC_PORT": "0"}, "fixed WE_GRPC_PORT"),
        ({**dsn, "WE_PROCESSES": "2", "WE_METRICS_PORT": "65535"}, "WE_METRICS_PORT"),
        ({**dsn, "WE_PROCESSES": "0"}, "at least 1"),
        ({**dsn, "WE_PROCESSES": "65"}, "at most 64"),
    ]:
        with pytest.raises(ConfigError) as info:
            load_settings(env)
        assert info.value.variable == "WE_PROCESSES"
        assert problem in str(info.value)
