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
            if node.module == "rochallor_server":  # from rochallor_server import app, config
                names.update(
                    f"rochallor_server.{alias.name}"
                    for alias in node.names
                    if (PACKAGE / alias.name).is_dir() or (PACKAGE / f"{alias.name}.py").is_file()
                )
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


def test_only_the_grpc_edge_imports_generated_code() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "_gen" not in path.parts
        and path.parent.name != "grpc"
        and any(n.startswith("rochallor_server._gen") for n in _imports(path))
    ]
    assert offenders == []


# Every top-level part of the package on its floor; a part imports only parts on lower floors
# or its own (the edges - storage, APIs, sweepers, dispatch - do not import each other).
FLOORS: dict[str, int] = {
    "_gen": 0,
    "errors": 0,
    "logs": 0,
    "metrics": 0,
    "config": 1,
    "tls": 1,
    "engine": 2,
    # The service reads the caller (auth's context variable) for audit and job-type limits.
    "auth": 3,
    "service": 4,
    "store": 5,
    "api": 5,
    "sweepers": 5,
    "dispatch": 5,
    "ui": 5,
    "app": 6,
    "processes": 7,
    "testing": 7,
    "_keys_cli": 7,
    "cli": 8,
    "__main__": 9,
    "__init__": 9,
}


def _part(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def test_every_part_of_the_package_has_a_floor() -> None:
    parts = {_part(p) for p in PACKAGE.rglob("*.py")}
    assert parts <= FLOORS.keys(), f"give these a floor in FLOORS: {sorted(parts - FLOORS.keys())}"


@pytest.mark.parametrize(
    "path",
    sorted(p for p in PACKAGE.rglob("*.py") if "_gen" not in p.parts),
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_no_import_runs_back_up(path: Path) -> None:
    own = _part(path)
    upward = sorted(
        name
        for name in _imports(path)
        if name.startswith("rochallor_server.")
        and (target := name.split(".")[1]) != own
        and FLOORS.get(target, 99) >= FLOORS[own]
    )
    assert not upward, f"{path.relative_to(PACKAGE)} (floor {FLOORS[own]}) imports {upward}"
