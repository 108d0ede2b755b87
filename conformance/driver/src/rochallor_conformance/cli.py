"""``python -m rochallor_conformance``: run the suite against an engine with a worker."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fnmatch
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from rochallor_conformance.engine import (
    AuditReader,
    Engine,
    GrpcEngine,
    RestEngine,
    wait_healthy,
)
from rochallor_conformance.errors import ConformanceError
from rochallor_conformance.runner import Result, run_scenario
from rochallor_conformance.scenario import Scenario, load_scenario, worker_script
from rochallor_conformance.vectors import (
    decision_table_scenarios,
    definition_scenarios,
    expression_scenarios,
)

ENV_ENGINE_URL = "ROCHALLOR_ENGINE_URL"
ENV_GRPC_TARGET = "ROCHALLOR_GRPC_TARGET"
ENV_SCRIPT = "ROCHALLOR_CONFORMANCE_SCRIPT"


def default_suite() -> Path:
    """The suite directory: the ``conformance/`` directory this package was installed from
    (editable installs), else ``./conformance`` or ``.`` when they hold ``scenarios/``."""
    candidates = [
        Path(__file__).resolve().parents[3],
        Path.cwd() / "conformance",
        Path.cwd(),
    ]
    for candidate in candidates:
        if (candidate / "scenarios").is_dir():
            return candidate
    return candidates[0]


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rochallor_conformance",
        description="Run the Rochallor conformance suite against an engine and a worker.",
    )
    parser.add_argument("--engine-url", required=True, help="REST base URL of the engine")
    parser.add_argument(
        "--grpc",
        metavar="HOST:PORT",
        help="drive the engine over gRPC at this target (REST is still used for /healthz)",
    )
    parser.add_argument(
        "--worker",
        metavar="CMD",
        help="worker command (shell syntax); it gets the engine address and the behaviour "
        "script through the environment (docs/conformance.md)",
    )
    parser.add_argument(
        "--suite",
        type=Path,
        default=None,
        help="suite directory (default: the repository's conformance/, or ./conformance)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATTERN",
        help="run only matching scenarios (glob; repeatable)",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="PATTERN",
        help="skip matching scenarios (glob; repeatable)",
    )
    parser.add_argument("--junit", type=Path, help="write a JUnit XML report here")
    parser.add_argument("--parallel", type=int, default=16, help="scenarios run at once")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="multiply every scenario timeout and sleep (slow engines, long leases)",
    )
    parser.add_argument("--list", action="store_true", help="list the selected scenarios and exit")
    parser.add_argument(
        "--worker-log", type=Path, help="file for the worker's output (default: discarded)"
    )
    parser.add_argument(
        "--audit-dsn",
        metavar="DSN",
        help="PostgreSQL DSN of the engine's database: also check audit expectations "
        "(the audit log has no API; needs the audit extra)",
    )
    return parser


def _selected(name: str, only: Sequence[str], skip: Sequence[str]) -> bool:
    if only and not any(fnmatch.fnmatchcase(name, p) for p in only):
        return False
    return not any(fnmatch.fnmatchcase(name, p) for p in skip)


def collect(suite: Path, run: str) -> list[Scenario]:
    """Every scenario of the suite: definition fixtures, vectors, runtime scenarios."""
    if not (suite / "scenarios").is_dir():
        raise ConformanceError(f"{suite} has no scenarios/ directory (use --suite)")
    definitions = suite / "definitions"
    fixtures = definitions / "valid"
    scenarios = definition_scenarios(definitions, run)
    scenarios += expression_scenarios(suite / "vectors" / "expressions.json", run, fixtures)
    scenarios += decision_table_scenarios(suite / "vectors" / "decision-tables.json", run, fixtures)
    scenarios += [
        load_scenario(path, run, fixtures) for path in sorted((suite / "scenarios").glob("*.json"))
    ]
    names = [s.name for s in scenarios]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConformanceError(f"duplicate scenario names: {duplicates}")
    return scenarios


class WorkerProcess:
    """The worker under test, started once for the whole run."""

    def __init__(self, command: str, env: dict[str, str], log: Path | None) -> None:
        self.command = command
        self._log = log.open("ab") if log is not None else None
        try:
            self.proc = subprocess.Popen(
                shlex.split(command),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._log or subprocess.DEVNULL,
                stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            if self._log is not None:
                self._log.close()
            raise ConformanceError(f"cannot start worker {command!r}: {exc}") from exc

    async def watch(self) -> None:
        """Return when the worker exits (it should run until the driver stops it)."""
        while True:
            if self.proc.poll() is not None:
                return
            await asyncio.sleep(0.5)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self._log is not None:
            self._log.close()


async def run_all(
    engine: Engine,
    rest: Engine,
    scenarios: Sequence[Scenario],
    parallel: int,
    scale: float,
    audit: AuditReader | None = None,
) -> list[Result]:
    """Run the scenarios, ``parallel`` at a time. Definition fixtures always go over REST:
    they test the JSON upload contract, which a typed gRPC message cannot even express."""
    semaphore = asyncio.Semaphore(max(parallel, 1))

    async def one(scenario: Scenario) -> Result:
        async with semaphore:
            target = rest if scenario.group == "definitions" else engine
            return await run_scenario(target, scenario, scale=scale, audit=audit)

    return list(await asyncio.gather(*(one(s) for s in scenarios)))


def print_table(results: Sequence[Result]) -> None:
    width = max([len(r.name) for r in results] + [8])
    _out(f"{'scenario':<{width}}  {'group':<16}  result  seconds  detail")
    _out("-" * (width + 44))
    for r in results:
        verdict = "PASS" if r.passed else "FAIL"
        _out(f"{r.name:<{width}}  {r.group:<16}  {verdict:<6}  {r.seconds:7.2f}  {r.message}")
    passed = sum(1 for r in results if r.passed)
    _out(f"{passed} passed, {len(results) - passed} failed")


def write_junit(path: Path, results: Sequence[Result], elapsed: float) -> None:
    failures = sum(1 for r in results if not r.passed)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuite name="rochallor-conformance" tests="{len(results)}" '
        f'failures="{failures}" errors="0" time="{elapsed:.3f}">',
    ]
    for r in results:
        lines.append(
            f"  <testcase classname={quoteattr(r.group)} name={quoteattr(r.name)} "
            f'time="{r.seconds:.3f}">'
        )
        if not r.passed:
            lines.append(
                f"    <failure message={quoteattr(r.message[:500])}>{escape(r.message)}</failure>"
            )
        lines.append("  </testcase>")
    lines.append("</testsuite>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


async def _run_watching(
    worker: WorkerProcess | None, suite: Coroutine[Any, Any, list[Result]]
) -> list[Result]:
    """Run the suite; abort it if the worker dies, since every scenario would then time out."""
    if worker is None:
        return await suite
    run = asyncio.ensure_future(suite)
    watch = asyncio.ensure_future(worker.watch())
    done, _ = await asyncio.wait({run, watch}, return_when=asyncio.FIRST_COMPLETED)
    if run in done:
        watch.cancel()
        return run.result()
    run.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await run
    raise ConformanceError(
        f"the worker {worker.command!r} exited with code {worker.proc.returncode} during the "
        "run (use --worker-log FILE to see why)"
    )


async def _main(args: argparse.Namespace) -> int:
    suite = (args.suite or default_suite()).resolve()
    run = secrets.token_hex(3)
    scenarios = [s for s in collect(suite, run) if _selected(s.name, args.only, args.skip)]
    if args.list:
        for s in scenarios:
            _out(f"{s.name}  [{s.group}]  {s.description}")
        return 0
    if not scenarios:
        raise ConformanceError("no scenario selected")
    await wait_healthy(args.engine_url, within=30.0)
    script = worker_script(scenarios)
    worker: WorkerProcess | None = None
    with tempfile.TemporaryDirectory(prefix="rochallor-conformance-") as tmp:
        script_path = Path(tmp) / "script.json"
        script_path.write_text(json.dumps(script, indent=1), encoding="utf-8")
        if script["jobTypes"] and not args.worker:
            raise ConformanceError("the selected scenarios need a worker: pass --worker CMD")
        if args.worker:
            env = {
                **os.environ,
                ENV_ENGINE_URL: args.engine_url,
                ENV_SCRIPT: str(script_path),
            }
            if args.grpc:
                env[ENV_GRPC_TARGET] = args.grpc
            worker = WorkerProcess(args.worker, env, args.worker_log)
        rest = RestEngine(args.engine_url)
        audit = AuditReader(args.audit_dsn) if args.audit_dsn else None
        engine: Engine = GrpcEngine(args.grpc) if args.grpc else rest
        started = time.monotonic()
        try:
            _out(
                f"rochallor conformance: {len(scenarios)} scenarios, run {run}, engine "
                f"{args.grpc or args.engine_url} ({'gRPC' if args.grpc else 'REST'}), "
                f"worker {args.worker or '-'}, audit "
                f"{'checked' if audit else 'not checked (no --audit-dsn)'}"
            )
            results = await _run_watching(
                worker, run_all(engine, rest, scenarios, args.parallel, args.time_scale, audit)
            )
        finally:
            await engine.close()
            await rest.close()
            if audit is not None:
                await audit.close()
            if worker is not None:
                worker.stop()
        elapsed = time.monotonic() - started
    print_table(results)
    if args.junit:
        write_junit(args.junit, results, elapsed)
    return 0 if all(r.passed for r in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(_main(args))
    except ConformanceError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
