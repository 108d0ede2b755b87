"""Helpers shared by the test folders (fixtures live in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rochallor_server.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[3]
CONFORMANCE = REPO / "conformance"
PROTO_ROOT = REPO / "proto"


def fixture_definition(name: str) -> dict[str, Any]:
    """A valid conformance definition by file stem."""
    path = CONFORMANCE / "definitions" / "valid" / f"{name}.json"
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def settings_for(pg_dsn: str, **extra: str) -> Settings:
    """Settings of an in-process engine on free loopback ports with fast sweepers."""
    return load_settings(
        {
            "WE_POSTGRES_DSN": pg_dsn,
            "WE_BIND_HOST": "127.0.0.1",
            "WE_REST_PORT": "0",
            "WE_GRPC_PORT": "0",
            "WE_METRICS_PORT": "0",
            "WE_JOB_LEASE": "30s",
            "WE_LEASE_SWEEP_INTERVAL": "200ms",
            "WE_TIMER_SWEEP_INTERVAL": "200ms",
            "DB_MIN_CONNS": "1",
            "DB_MAX_CONNS": "10",
            **extra,
        }
    )
