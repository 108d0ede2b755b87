"""The folder layout is the architecture: the engine core stays pure."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "rochallor_server"
FORBIDDEN_IN_ENGINE = (
    "asyncio",
    "asyncpg",
    "aiohttp",
    "aiokafka",
    "grpclib",
    "rochallor_server.service",
    "rochallor_server.store",
    "rochallor_server.api",
    "rochallor_server.dispatch",
    "rochallor_server.sweepers",
    "rochallor_server._gen",
)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted((PACKAGE / "engine").glob("*.py")), ids=lambda p: p.name)
def test_engine_core_does_no_io(path: Path) -> None:
    bad = {
        name
        for name in _imports(path)
        for forbidden in FORBIDDEN_IN_ENGINE
        if name == forbidden or name.startswith(forbidden + ".")
    }
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "service").glob("*.py")), ids=lambda p: p.name)
def test_service_does_not_reach_into_edges(path: Path) -> None:
    edges = ("rochallor_server.api", "rochallor_server.store", "asyncpg", "aiohttp", "grpclib")
    bad = {n for n in _imports(path) for e in edges if n == e or n.startswith(e + ".")}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_only_the_wire_edges_import_generated_code() -> None:
    """gRPC, and the Kafka records of ``kafka_outbox`` mode."""
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "_gen" not in path.parts
        and path.parent.name not in {"grpc", "kafka_outbox"}
        and any(n.startswith("rochallor_server._gen") for n in _imports(path))
    ]
    assert offenders == []
