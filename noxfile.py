"""Developer and CI tasks. ``nox`` alone runs everything CI runs; ``nox -l`` lists sessions."""

from __future__ import annotations

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
    "schemathesis",
    "conformance",
]

PYTHON = "3.11"
VALIDATOR = "packages/rochallor-validator"
SERVER = "packages/rochallor-server"
SDK = "packages/rochallor-sdk"
CONFORMANCE = "conformance/driver"
CODEGEN_REQUIREMENTS = "codegen/requirements.txt"


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
