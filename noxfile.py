"""Developer and CI tasks. ``nox`` alone runs everything CI runs; ``nox -l`` lists sessions."""

from __future__ import annotations

import filecmp

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True
nox.options.sessions = [
    "lint",
    "typecheck",
    "codegen_check",
    "tests_validator",
    "tests_server",
    "tests_sdk",
    "tests_kafka",
    "schemathesis",
    "conformance",
    "faults_quick",
    "ui_check",
    "tests_ui",
]

PYTHON = "3.11"
VALIDATOR = "packages/rochallor-validator"
SERVER = "packages/rochallor-server"
SDK = "packages/rochallor-sdk"
CONFORMANCE = "conformance/driver"
CODEGEN_REQUIREMENTS = "codegen/requirements.txt"
CONSOLE = "packages/rochallor-console"
UI_STATIC = f"{SERVER}/src/rochallor_server/ui/static"


def _pytest(session: nox.Session, package: str) -> None:
    session.chdir(package)
    session.run("pytest", "-q", "-p", "no:randomly", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff: lint rules and formatting, whole repository (generated code excluded)."""
    session.install("ruff==0.17.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over every package's source (generated code excluded)."""
    session.install(
        "mypy==2.4.1",
        "asyncpg-stubs",
        "-e",
        VALIDATOR,
        "-e",
        f"{SERVER}[test]",
        "-e",
        f"{SDK}[test]",
        "-e",
        f"{CONFORMANCE}[grpc,audit,test]",
    )
    session.run(
        "mypy",
        f"{VALIDATOR}/src",
        f"{SERVER}/src",
        f"{SDK}/src",
        f"{CONFORMANCE}/src",
        "conformance/workers/sdk_worker.py",
    )


@nox.session(python=PYTHON)
def tests_validator(session: nox.Session) -> None:
    """Validator: unit tests, conformance fixtures, hypothesis properties."""
    session.install("-e", f"{VALIDATOR}[test]")
    _pytest(session, VALIDATOR)


@nox.session(python=PYTHON)
def tests_server(session: nox.Session) -> None:
    """Server: unit tests and integration tests on an embedded PostgreSQL."""
    session.install("-e", f"{VALIDATOR}[test]", "-e", f"{SERVER}[test]")
    _pytest(session, SERVER)


@nox.session(python=PYTHON)
def tests_sdk(session: nox.Session) -> None:
    """SDK: unit tests, and integration tests against a real engine on an embedded PostgreSQL."""
    session.install("-e", f"{SDK}[test]", "-e", VALIDATOR, "-e", SERVER)
    _pytest(session, SDK)


@nox.session(python=PYTHON)
def tests_kafka(session: nox.Session) -> None:
    """Kafka dispatch against a real broker (Java 17 + Maven fetch and run it): relay, SDK
    Kafka runner, wire format."""
    session.install("-e", f"{VALIDATOR}[test]", "-e", f"{SERVER}[test]", "-e", f"{SDK}[kafka]")
    session.run("python", "-m", "rochallor_server.testing.kafka_broker", "--fetch-only")
    session.chdir(SERVER)
    session.run("pytest", "-q", "-p", "no:randomly", "tests_kafka", *session.posargs)


@nox.session(python=PYTHON)
def kafka_broker(session: nox.Session) -> None:
    """Run a one-node Kafka broker on 127.0.0.1 until Ctrl-C (args go to the script, e.g.
    ``-- --topics workflow.jobs.charge-card``)."""
    session.install("-e", SERVER)
    session.run("python", "-m", "rochallor_server.testing.kafka_broker", *session.posargs)


@nox.session(python=PYTHON)
def conformance(session: nox.Session) -> None:
    """Conformance suite against our server on an embedded PostgreSQL: every scenario, vector and
    definition fixture with the SDK worker over REST and over gRPC and with the Node.js worker;
    plus the proof that injected engine faults make it fail (docs/conformance.md)."""
    session.install(
        "-e", VALIDATOR, "-e", SERVER, "-e", SDK, "-e", f"{CONFORMANCE}[grpc,audit,test]"
    )
    _pytest(session, CONFORMANCE)


@nox.session(python=PYTHON)
def schemathesis(session: nox.Session) -> None:
    """Schemathesis against a real engine's served OpenAPI document: no server error, no answer
    outside the document, schema-valid input accepted and invalid input refused (~2 minutes).
    """
    session.install("-e", VALIDATOR, "-e", SERVER, "schemathesis==4.32.5")
    session.run("python", f"{SERVER}/fuzz/run_schemathesis.py")


@nox.session(python=PYTHON)
def codegen(session: nox.Session) -> None:
    """Regenerate the betterproto2 packages from proto/ into the server and the SDK."""
    session.install("-r", CODEGEN_REQUIREMENTS)
    session.run("python", "codegen/generate.py")


@nox.session(python=PYTHON)
def codegen_check(session: nox.Session) -> None:
    """Fail if the committed generated code differs from a fresh generation."""
    session.install("-r", CODEGEN_REQUIREMENTS)
    session.run("python", "codegen/generate.py", "--check")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmark suite (not part of the default run): prints ``name=value`` figures.

    Settings come from ``BENCH_*`` variables (docs/performance.md); the engine subprocess also
    inherits the environment (``DB_MAX_CONNS``, ``WE_AUDIT_LOG_ENABLED`` …).
    """
    session.install("-e", VALIDATOR, "-e", SERVER, "-e", SDK)
    # micro-benchmarks first (validator and gRPC conversion), then the engine scenarios
    session.run("python", f"{VALIDATOR}/bench/bench_validator.py")
    session.run("python", f"{SERVER}/bench/bench_grpc_convert.py")
    session.run("python", "bench/run.py")


def _faults(session: nox.Session, scale: str) -> None:
    session.install("-e", VALIDATOR, "-e", f"{SERVER}[test]", "-e", f"{SDK}[test]")
    session.run(
        "pytest",
        "faults",
        "-q",
        "-p",
        "no:randomly",
        "-p",
        "no:cacheprovider",
        "-p",
        "rochallor_server.testing.pytest_plugin",
        *session.posargs,
        env={"FAULTS_SCALE": scale},
    )


@nox.session(python=PYTHON)
def faults(session: nox.Session) -> None:
    """Fault suite, full size (on demand): real processes on an embedded PostgreSQL, one
    line of figures per scenario; fails on a lost, stuck or double-advanced instance or an
    invariant violation (faults/invariants.sql). See docs/reliability.md."""
    _faults(session, "full")


@nox.session(python=PYTHON)
def faults_quick(session: nox.Session) -> None:
    """Fault suite with fewer instances and faults (part of the default run)."""
    _faults(session, "quick")


def _npm_ci(session: nox.Session) -> None:
    """Install the front-end's exact dependencies from its committed package-lock.json."""
    session.chdir(CONSOLE)
    session.run("npm", "ci", "--no-audit", "--no-fund", external=True)


@nox.session(python=False)
def ui_build(session: nox.Session) -> None:
    """Build the browser UI (packages/rochallor-console) into the server package (committed)."""
    _npm_ci(session)
    session.run("npm", "run", "build", external=True)


@nox.session(python=False)
def ui_check(session: nox.Session) -> None:
    """Front-end: type check, Vitest unit tests, and fail if the committed bundle is stale."""
    import tempfile
    from pathlib import Path

    _npm_ci(session)
    session.run("npx", "tsc", "--noEmit", external=True)
    session.run("npx", "vitest", "run", external=True)
    committed = Path("..", "..", UI_STATIC).resolve()
    with tempfile.TemporaryDirectory() as fresh:
        session.run("npx", "vite", "build", "--outDir", fresh, "--emptyOutDir", external=True)
        stale = _tree_differences(filecmp.dircmp(fresh, committed))
    if stale:
        session.error(
            "the committed UI bundle differs from a fresh build (run `nox -s ui_build`): "
            + ", ".join(sorted(stale))
        )


def _tree_differences(cmp: filecmp.dircmp[str], prefix: str = "") -> list[str]:
    found = [prefix + name for name in cmp.left_only + cmp.right_only + cmp.diff_files]
    found += [prefix + name for name in cmp.funny_files]
    for name, sub in cmp.subdirs.items():
        found += _tree_differences(sub, f"{prefix}{name}/")
    return found


def _ensure_chromium(session: nox.Session) -> None:
    """Debian's Chromium at /usr/bin/chromium (Playwright's own browser download is not used)."""
    from pathlib import Path

    if Path("/usr/bin/chromium").exists():
        return
    session.log("installing Debian's chromium (apt-get)")
    sudo = [] if _is_root() else ["sudo"]
    session.run(*sudo, "apt-get", "update", "-qq", external=True)
    session.run(
        *sudo,
        "apt-get",
        "install",
        "-y",
        "-qq",
        "chromium",
        external=True,
        env={"DEBIAN_FRONTEND": "noninteractive"},
    )


def _is_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0


@nox.session(python=PYTHON)
def tests_ui(session: nox.Session) -> None:
    """Browser tests of the UI: Playwright drives Debian's Chromium against a real engine."""
    _ensure_chromium(session)
    session.install(
        "-e", VALIDATOR, "-e", f"{SERVER}[ui-test]", "-e", SDK, "pytest>=8", "pytest-timeout>=2.3"
    )  # fmt: skip
    session.chdir(CONSOLE)
    session.run("pytest", "-q", "-p", "no:randomly", "browser_tests", *session.posargs)


@nox.session(python=PYTHON)
def ui_screenshots(session: nox.Session) -> None:
    """Retake the modeller screenshots of docs/modeller.md (docs/images/modeller-*.png)."""
    _ensure_chromium(session)
    session.install("-e", VALIDATOR, "-e", f"{SERVER}[ui-test]")
    session.chdir(CONSOLE)
    session.run("python", "-m", "browser_tests.screenshots")
