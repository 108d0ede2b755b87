#!/usr/bin/env python3
"""Generate the betterproto2 stubs of ``proto/workflow/v1/engine.proto``.

Each target ``_gen`` directory (server and SDK) gets its own plugin options and is replaced
with a fresh generation. The server's output also carries the protobuf file descriptors (for
gRPC server reflection); the SDK's does not, so it runs without the protobuf runtime. With
``--check`` nothing is written: the stubs are generated into a temporary directory and
compared with the committed ones; any difference (a hand edit, a stale proto, an extra or a
missing file) exits with status 1.

Run it with the interpreter of a virtualenv that has ``codegen/requirements.txt`` installed.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "proto"
PROTO_FILES: tuple[str, ...] = ("workflow/v1/engine.proto",)
BASE_OPTIONS: tuple[str, ...] = ("client_generation=async", "server_generation=async")


@dataclass(frozen=True)
class Target:
    """A committed ``_gen`` directory and the betterproto2 plugin options it is generated with."""

    path: Path
    options: tuple[str, ...]

    @property
    def plugin_options(self) -> str:
        return ",".join(self.options)


TARGETS: tuple[Target, ...] = (
    # google_protobuf_descriptors: the messages carry their descriptors and the package gets
    # ``google_proto_descriptor_pool.py``, which the server hands to gRPC server reflection
    # (needs the protobuf runtime, a server dependency anyway).
    Target(
        REPO_ROOT / "packages/rochallor-server/src/rochallor_server/_gen",
        (*BASE_OPTIONS, "google_protobuf_descriptors"),
    ),
    # The SDK must work without the protobuf runtime: no descriptors.
    Target(REPO_ROOT / "packages/rochallor-sdk/src/rochallor_sdk/_gen", BASE_OPTIONS),
)
# Files and directories that never belong to the generated output.
IGNORED_NAMES = frozenset({"__pycache__", ".ruff_cache", ".mypy_cache"})


class CodegenError(Exception):
    """The compiler could not be run or failed."""


def _protoc_env() -> dict[str, str]:
    """Environment for protoc: this interpreter's bin dir first on PATH.

    protoc looks up ``protoc-gen-python_betterproto2`` on PATH, and the betterproto2
    compiler runs ``ruff`` by bare name, so both must come from the codegen venv.
    """
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    current = env.get("PATH")
    env["PATH"] = f"{bin_dir}{os.pathsep}{current}" if current else bin_dir
    return env


def generate_into(out_dir: Path, plugin_options: str) -> None:
    """Run protoc with the betterproto2 plugin, writing the package tree into ``out_dir``."""
    for proto in PROTO_FILES:
        if not (PROTO_ROOT / proto).is_file():
            raise CodegenError(f"proto file not found: {PROTO_ROOT / proto}")
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        "-I",
        "proto",
        f"--python_betterproto2_out={out_dir}",
        f"--python_betterproto2_opt={plugin_options}",
        *(f"proto/{proto}" for proto in PROTO_FILES),
    ]
    try:
        result = subprocess.run(
            cmd,
            cwd=REPO_ROOT,
            env=_protoc_env(),
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        raise CodegenError(f"could not run protoc: {exc}") from exc
    if result.returncode != 0:
        raise CodegenError(
            f"protoc failed (exit {result.returncode}):\n$ {' '.join(cmd)}\n"
            f"{result.stdout}{result.stderr}"
        )
    if not (out_dir / "__init__.py").is_file():
        raise CodegenError(f"protoc produced no package in {out_dir}; is the plugin installed?")
    _remove_ignored(out_dir)


def _remove_ignored(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        if path.name in IGNORED_NAMES and path.exists():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def _relative_files(root: Path) -> set[str]:
    if not root.is_dir():
        return set()
    files: set[str] = set()
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part in IGNORED_NAMES for part in rel.parts) or path.suffix == ".pyc":
            continue
        if path.is_file():
            files.add(rel.as_posix())
    return files


def diff_trees(expected: Path, actual: Path) -> list[str]:
    """Describe every file that differs between the fresh output and a target dir."""
    want = _relative_files(expected)
    have = _relative_files(actual)
    problems: list[str] = []
    for rel in sorted(want | have):
        if rel not in have:
            problems.append(f"missing:  {rel}")
        elif rel not in want:
            problems.append(f"extra:    {rel}")
        elif not filecmp.cmp(expected / rel, actual / rel, shallow=False):
            problems.append(f"modified: {rel}")
    return problems


def replace_dir(source: Path, target: Path) -> None:
    """Make ``target`` an exact copy of ``source``."""
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target)


def _display(path: Path) -> str:
    try:
        return path.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def run(check: bool) -> int:
    with tempfile.TemporaryDirectory(prefix="rochallor-codegen-") as tmp:
        # One generation per distinct option set, shared by the targets that use it.
        fresh: dict[str, Path] = {}
        for target in TARGETS:
            if target.plugin_options not in fresh:
                out = Path(tmp) / f"gen{len(fresh)}" / "_gen"
                generate_into(out, target.plugin_options)
                fresh[target.plugin_options] = out
        if check:
            failed = False
            for target in TARGETS:
                problems = diff_trees(fresh[target.plugin_options], target.path)
                if problems:
                    failed = True
                    print(
                        f"{_display(target.path)} is out of date with the proto:", file=sys.stderr
                    )
                    for line in problems:
                        print(f"  {line}", file=sys.stderr)
            if failed:
                print(
                    "Generated code differs from proto/ (hand edit or stale output). "
                    "Regenerate with: python codegen/generate.py",
                    file=sys.stderr,
                )
                return 1
            print("generated code is up to date")
            return 0
        for target in TARGETS:
            replace_dir(fresh[target.plugin_options], target.path)
            print(f"wrote {_display(target.path)} ({target.plugin_options})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if the committed _gen dirs differ from a fresh generation",
    )
    args = parser.parse_args(argv)
    try:
        return run(check=args.check)
    except CodegenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
