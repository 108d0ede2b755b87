"""Running the installed ``rochallor`` command as a user does: a subprocess, its exit code,
its stdout and stderr."""

from __future__ import annotations

import os
import pty
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
from click.testing import CliRunner

from rochallor_sdk.cli import cli

REPO = Path(__file__).resolve().parents[4]
EXAMPLES = REPO / "examples"
#: The console script installed with the SDK (next to this interpreter).
ROCHALLOR = str(Path(sys.executable).parent / "rochallor")

#: Variables that would make Rich draw a terminal UI into a pipe (or change its width).
_HINTS = ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS")


def closed_port() -> int:
    """A local TCP port nobody listens on (just released by this process)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def cli_env(engine_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("ROCHALLOR_") and name not in _HINTS
    }
    if engine_url is not None:
        env["ROCHALLOR_ENGINE_URL"] = engine_url
    env.update(extra)
    return env


@attrs.frozen
class Run:
    """What one ``rochallor`` run did."""

    returncode: int
    stdout: str
    stderr: str


def rochallor(
    *args: str,
    engine_url: str | None,
    env: dict[str, str] | None = None,
) -> Run:
    """``rochallor ARGS…`` in this process (Click's runner: stdout and stderr are not a
    terminal), for speed. Any exception other than the command's exit is re-raised."""
    variables = {
        name: None for name in os.environ if name.startswith("ROCHALLOR_") or name in _HINTS
    }
    variables["ROCHALLOR_ENGINE_URL"] = engine_url
    variables.update(env or {})
    result = CliRunner().invoke(cli, list(args), env=variables, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(result.exit_code, result.stdout, result.stderr)


def rochallor_process(
    *args: str,
    engine_url: str | None,
    cwd: Path = REPO,
    timeout: float = 60.0,
) -> Run:
    """``rochallor ARGS…`` as its own process (the installed console script), output piped."""
    result = subprocess.run(
        [ROCHALLOR, *args],
        env=cli_env(engine_url),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(result.returncode, result.stdout, result.stderr)


def ok(result: Run) -> str:
    """stdout of a run that must have succeeded."""
    assert result.returncode == 0, describe(result)
    return result.stdout


def describe(result: Run) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def assert_one_error(result: Run, code: int, *fragments: str) -> str:
    """The run failed with ``code`` and said why on exactly one stderr line, no traceback."""
    assert result.returncode == code, describe(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, describe(result)
    line = lines[0]
    assert line.startswith("error: "), describe(result)
    for fragment in fragments:
        assert fragment in line, describe(result)
    assert "Traceback" not in result.stderr + result.stdout
    return line


def run_in_terminal(
    *args: str, engine_url: str, columns: int = 120, timeout: float = 40.0
) -> tuple[int, str]:
    """``rochallor ARGS…`` with stdout on a pseudo-terminal; returns (exit code, raw output)."""
    master, slave = pty.openpty()
    env = cli_env(engine_url, TERM="xterm-256color", COLUMNS=str(columns))
    proc = subprocess.Popen(
        [ROCHALLOR, *args],
        env=env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every copy of the terminal's other side is closed
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=timeout)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, b"".join(chunks).decode(errors="replace")


class WorkerCommand:
    """``rochallor worker MODULE:REGISTRY …`` running in the background."""

    def __init__(self, proc: subprocess.Popen[str], log: Path) -> None:
        self.proc = proc
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker never printed {text!r}:\n{self.output()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"worker still running after SIGTERM:\n{self.output()}") from None


@contextmanager
def worker_command(*args: str, engine_url: str, log: Path) -> Iterator[WorkerCommand]:
    """Run ``rochallor worker ARGS…``; SIGTERM at the end, which must give exit code 0."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            [ROCHALLOR, "worker", *args],
            # A short long-poll, so that a stopped worker lets go of the engine at once.
            env=cli_env(engine_url, ROCHALLOR_WORKER_LONG_POLL_WAIT="1s"),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    worker = WorkerCommand(proc, log)
    try:
        yield worker
    except BaseException:
        worker.stop()
        raise
    code = worker.stop()
    assert code == 0, f"worker exited {code} after SIGTERM:\n{worker.output()}"
