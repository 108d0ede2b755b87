from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rochallor_validator.cli import main

FIXTURES = Path(__file__).parents[4] / "conformance" / "definitions"
VALID = FIXTURES / "valid" / "order-fulfilment.json"
INVALID = FIXTURES / "invalid" / "REF_RESOLVES--next-step.json"


def lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


def test_all_accepted_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(VALID)]) == 0
    (line,) = lines(capsys.readouterr().out)
    assert line == {"file": str(VALID), "accepted": True, "error": "", "errors": []}


def test_rejected_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(VALID), str(INVALID)]) == 1
    first, second = lines(capsys.readouterr().out)
    assert first["accepted"] is True
    assert second["accepted"] is False
    assert isinstance(second["error"], str)
    assert second["error"].startswith("validation error: ")
    errors = second["errors"]
    assert isinstance(errors, list)
    assert errors[0] == {
        "code": "REF_RESOLVES",
        "path": "$.steps[0].nextStep",
        "message": errors[0]["message"],
    }


def test_unreadable_input_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    assert main([str(bad), str(tmp_path / "missing.json"), str(VALID)]) == 2
    captured = capsys.readouterr()
    assert "not valid JSON" in captured.err
    assert "cannot read" in captured.err
    assert [line["file"] for line in lines(captured.out)] == [str(VALID)]


def test_warnings_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads(VALID.read_text())
    doc["steps"][4]["nextStep"] = "end"
    path = tmp_path / "warn.json"
    path.write_text(json.dumps(doc))
    assert main(["--warnings", str(path)]) == 0
    (line,) = lines(capsys.readouterr().out)
    assert line["accepted"] is True
    warnings = line["warnings"]
    assert isinstance(warnings, list)
    assert [w["code"] for w in warnings] == ["INAPPLICABLE_FIELD"]


def test_python_dash_m_subprocess() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rochallor_validator", str(INVALID)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert lines(proc.stdout)[0]["accepted"] is False
