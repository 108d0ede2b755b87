"""``rochallor-validate FILE...``: validate definition files, one JSON line per file.

Exit status: 0 when every file is accepted, 1 when any is rejected, 2 when a file cannot be
read or is not JSON (a message is printed on stderr; the other files are still checked).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rochallor_validator._errors import summarize_issues
from rochallor_validator._parse import check_definition


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rochallor-validate",
        description="Validate Rochallor workflow definition files (JSON).",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="definition file(s)")
    parser.add_argument(
        "--warnings", action="store_true", help="also print warnings (key 'warnings')"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    status = 0
    for name in args.files:
        try:
            text = Path(name).read_bytes()
        except OSError as exc:
            sys.stderr.write(f"rochallor-validate: cannot read {name}: {exc.strerror or exc}\n")
            status = 2
            continue
        try:
            json.loads(text)
        except ValueError as exc:
            sys.stderr.write(f"rochallor-validate: {name}: not valid JSON: {exc}\n")
            status = 2
            continue
        report = check_definition(text)
        line: dict[str, object] = {
            "file": name,
            "accepted": report.accepted,
            "error": summarize_issues(report.errors),
            "errors": [issue.to_json() for issue in report.errors],
        }
        if args.warnings:
            line["warnings"] = [issue.to_json() for issue in report.warnings]
        sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
        if not report.accepted and status == 0:
            status = 1
    sys.stdout.flush()
    return status
