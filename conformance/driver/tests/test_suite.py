"""The whole suite against our server, with each of the three workers (nox -s conformance)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from conftest import last_line, node_worker, run_driver, sdk_worker


def _assert_all_passed(result: object, junit: Path | None = None) -> None:
    import subprocess

    assert isinstance(result, subprocess.CompletedProcess)
    summary = last_line(result)
    match = re.fullmatch(r"(\d+) passed, (\d+) failed", summary)
    assert match, f"last line is not the summary: {summary!r}"
    assert int(match[1]) > 250, summary  # every scenario, vector and fixture ran
    assert match[2] == "0", summary
    assert result.returncode == 0
    if junit is not None:
        suite = ET.parse(junit).getroot()
        assert suite.get("tests") == match[1]
        assert suite.get("failures") == "0"


def test_sdk_worker_over_rest(engine, tmp_path):  # type: ignore[no-untyped-def]
    junit = tmp_path / "rest.xml"
    result = run_driver(
        "--engine-url",
        engine.rest_url,
        "--worker",
        sdk_worker(),
        "--junit",
        str(junit),
        "--audit-dsn",
        engine.env["WE_POSTGRES_DSN"],
    )
    _assert_all_passed(result, junit)
    assert "audit checked" in result.stdout


def test_sdk_worker_over_grpc(engine):  # type: ignore[no-untyped-def]
    result = run_driver(
        "--engine-url",
        engine.rest_url,
        "--grpc",
        engine.grpc_target,
        "--worker",
        sdk_worker("--grpc"),
        "--audit-dsn",
        engine.env["WE_POSTGRES_DSN"],
    )
    _assert_all_passed(result)
    assert "(gRPC)" in result.stdout


def test_node_worker_over_rest(engine):  # type: ignore[no-untyped-def]
    result = run_driver(
        "--engine-url",
        engine.rest_url,
        "--worker",
        node_worker(),
        "--audit-dsn",
        engine.env["WE_POSTGRES_DSN"],
    )
    _assert_all_passed(result)
