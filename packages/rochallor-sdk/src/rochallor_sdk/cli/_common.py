"""What every ``rochallor`` command shares: options, exit codes, errors, running a call."""

from __future__ import annotations

import asyncio
import enum
import io
from collections.abc import Awaitable, Callable, Sequence
from typing import IO, Any, ParamSpec, TypeVar

import attrs
import click
from rich.console import Console, RenderableType

from rochallor_sdk import _errors
from rochallor_sdk.cli import _format
from rochallor_sdk.client import _rest

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_ENGINE_URL = "http://localhost:8080"


class ExitCode(enum.IntEnum):
    """Exit status of ``rochallor`` (also listed in ``docs/cli.md``)."""

    OK = 0
    #: ``start --wait`` / ``instances watch``: the instance ended FAILED or CANCELLED.
    NOT_COMPLETED = 1
    #: Bad command line: unknown option, bad ``--var``, unreadable file, bad ``MODULE:REGISTRY``.
    USAGE = 2
    #: The definition (or another request) is invalid: local validation or the engine's 400.
    INVALID = 3
    #: The engine does not know the definition, instance or user task (404).
    NOT_FOUND = 4
    #: The request does not apply in the instance's state (409), e.g. cancel a finished one.
    CONFLICT = 5
    #: The engine cannot be reached (connection refused, timeout, DNS).
    UNREACHABLE = 6
    #: The engine answered another error (5xx, unexpected answer).
    ENGINE_ERROR = 7
    #: ``--timeout`` of ``start --wait`` / ``instances watch`` elapsed before the end.
    TIMEOUT = 8
    #: Interrupted with Ctrl-C.
    INTERRUPTED = 130


class CliError(click.ClickException):
    """A failure reported as ``error: <line>`` on stderr (one line per message)."""

    def __init__(self, *messages: str, code: ExitCode = ExitCode.USAGE) -> None:
        lines = [line for message in messages for line in [_format.one_line(message)] if line]
        super().__init__("\n".join(lines) or code.name.lower())
        self.lines = lines
        # click declares exit_code a class variable; each CliError carries its own.
        self.exit_code = int(code)  # type: ignore[misc]

    def show(self, file: IO[Any] | None = None) -> None:
        for line in self.lines or [self.message]:
            click.echo(f"error: {line}", err=True, file=file)


# --- shared options ------------------------------------------------------------------------


@attrs.define
class Options:
    """The global options, refined by the same options given after a sub-command."""

    engine: str | None = None
    token: str | None = None
    output: str = "table"
    request_timeout: float = 10.0
    console: Console = attrs.field(factory=lambda: Console(highlight=False))

    @property
    def engine_url(self) -> str:
        return self.engine or DEFAULT_ENGINE_URL

    @property
    def json(self) -> bool:
        return self.output == "json"

    def client(self) -> _rest.RestClient:
        return _rest.RestClient(
            self.engine_url, request_timeout=self.request_timeout, token=self.token
        )

    def emit(self, renderable: RenderableType | str) -> None:
        """Print to stdout: styled in a terminal; plain, unwrapped and right-trimmed when piped."""
        if self.console.is_terminal:
            self.console.print(renderable)
            return
        buffer = io.StringIO()
        Console(
            file=buffer, width=1000, no_color=True, highlight=False, force_terminal=False
        ).print(renderable)
        click.echo("\n".join(line.rstrip() for line in buffer.getvalue().splitlines()))

    def emit_json(self, value: Any) -> None:
        click.echo(_format.json_text(value))


def _set(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value is not None:
            setattr(ctx.ensure_object(Options), name, value)

    return callback


OUTPUT = click.Choice(["table", "json"])


def common_options(func: Callable[P, T]) -> Callable[P, T]:
    """``--engine``, ``--token`` and ``--output`` also after the sub-command."""
    decorated: Callable[P, T] = func
    for option in (
        click.option(
            "--engine", metavar="URL", expose_value=False, callback=_set("engine"),
            help="Engine REST URL (overrides the global option).",
        ),
        click.option(
            "--token", expose_value=False, callback=_set("token"),
            help="Bearer token (overrides the global option).",
        ),
        click.option(
            "-o", "--output", type=OUTPUT, expose_value=False, callback=_set("output"),
            help="table (default) or json.",
        ),
    ):  # fmt: skip
        decorated = option(decorated)
    return decorated


def options() -> Options:
    return click.get_current_context().ensure_object(Options)


# --- running one engine call ---------------------------------------------------------------


def run(
    opts: Options,
    call: Callable[[_rest.RestClient], Awaitable[T]],
    *,
    subject: str = "",
) -> T:
    """Run ``call`` with a client; turn every SDK error into a :class:`CliError`."""

    async def main() -> T:
        async with opts.client() as client:
            return await call(client)

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        raise CliError("interrupted", code=ExitCode.INTERRUPTED) from None
    except _errors.RochallorSdkError as exc:
        raise api_failure(exc, opts.engine_url, subject) from None


def api_failure(exc: _errors.RochallorSdkError, engine_url: str, subject: str = "") -> CliError:
    """The :class:`CliError` for an SDK error (``subject`` names what the call was about)."""
    if isinstance(exc, _errors.TransportError):
        cause = str(exc).split(": ", 1)[-1]
        return CliError(
            f"cannot reach the engine at {engine_url} ({cause}); is it running? "
            "Set --engine or ROCHALLOR_ENGINE_URL",
            code=ExitCode.UNREACHABLE,
        )
    if isinstance(exc, _errors.ApiError):
        reason = _format.one_line(exc.reason) or f"HTTP {exc.status}"
        if subject and not _mentions(reason, subject):
            reason = f"{subject}: {reason}"
        if isinstance(exc, _errors.NotFound):
            return CliError(reason, code=ExitCode.NOT_FOUND)
        if isinstance(exc, _errors.Conflict):
            return CliError(reason, code=ExitCode.CONFLICT)
        if exc.status in (400, 422, "INVALID_ARGUMENT"):
            return CliError(reason, code=ExitCode.INVALID)
        if exc.status in (401, 403, "UNAUTHENTICATED", "PERMISSION_DENIED"):
            return CliError(f"{reason} (check --token / ROCHALLOR_TOKEN)", code=ExitCode.INVALID)
        return CliError(f"the engine answered {exc.status}: {reason}", code=ExitCode.ENGINE_ERROR)
    return CliError(str(exc), code=ExitCode.ENGINE_ERROR)


def _mentions(reason: str, subject: str) -> bool:
    """True when ``reason`` already names the subject's id (``instance "X" not found``)."""
    ident = subject.rsplit(" ", 1)[-1]
    return ident in reason


def read_variables(vars_file: IO[str] | None, pairs: Sequence[str]) -> dict[str, Any]:
    try:
        base = None
        if vars_file is not None:
            base = _format.parse_vars_document(vars_file.read(), vars_file.name)
        return _format.merge_variables(base, pairs)
    except _format.BadArgument as exc:
        raise CliError(str(exc), code=ExitCode.USAGE) from None


def variable_options(func: Callable[P, T]) -> Callable[P, T]:
    """``--var KEY=VALUE`` (repeatable) and ``--vars-file FILE``."""
    decorated = click.option(
        "--vars-file",
        type=click.File("r"),
        help="JSON object file of variables ('-' reads stdin); --var entries override it.",
    )(func)
    return click.option(
        "--var",
        "pairs",
        multiple=True,
        metavar="KEY=VALUE",
        help="A variable; VALUE is JSON when it parses (3, true, [1]) else a string. Repeatable.",
    )(decorated)
