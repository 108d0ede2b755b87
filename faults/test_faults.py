"""The fault suite: one test per scenario, each printing its figures on one line and failing on
a lost, stuck or double-advanced instance or on any invariant violation (invariants.sql).

``FAULTS_SCALE=full`` (``nox -s faults``) or ``quick`` (``nox -s faults_quick``, in the
default run)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

import harness as h
import pytest
import scenarios


@pytest.mark.parametrize("name", list(scenarios.SCENARIOS))
def test_scenario(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    scale = h.Scale.from_env()
    # Not pytest's tmp_path: PostgreSQL runs as another user under root, and pytest's base
    # directory is private to the user running the tests.
    workdir = Path(tempfile.mkdtemp(prefix=f"rochallor-faults-{name}-"))
    try:
        result = asyncio.run(scenarios.SCENARIOS[name](workdir, scale))
    except BaseException:
        sys.stderr.write(f"logs kept in {workdir}\n")
        raise
    if os.environ.get("FAULTS_KEEP"):
        sys.stderr.write(f"logs kept in {workdir}\n")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    with capsys.disabled():
        sys.stdout.write("\n" + result.line() + "\n")
        for check, rows in result.violations.items():
            sys.stdout.write(f"  violation {check}: {rows}\n")
        sys.stdout.flush()
    assert result.instances > 0
    assert result.ok, result.line()
