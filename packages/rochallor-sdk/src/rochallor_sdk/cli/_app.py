"""The ``rochallor`` command: deploy, start, inspect and act on workflows, run workers.

Every admin command talks to the engine's REST API through :class:`RestClient`. Errors are
printed as one ``error: …`` line per problem on stderr, with the exit codes of
:class:`ExitCode`; a traceback is never shown.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import importlib
import importlib.util
import io
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import IO, Any, ParamSpec, TypeVar

import attrs
import click
from rich.console import Console, RenderableType
from rich.live import Live

from rochallor_sdk import _config, _errors, _registry, _worker
from rochallor_sdk.cli import _format
from rochallor_sdk.client import _rest

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_ENGINE_URL = "http://localhost:8080"
#: Pause between two looks at a followed instance.
FOLLOW_INTERVAL = 0.25

logger = logging.getLogger("rochallor_sdk.cli")


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


_OUTPUT = click.Choice(["table", "json"])


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
            "-o", "--output", type=_OUTPUT, expose_value=False, callback=_set("output"),
            help="table (default) or json.",
        ),
    ):  # fmt: skip
        decorated = option(decorated)
    return decorated


def _options() -> Options:
    return click.get_current_context().ensure_object(Options)


# --- running one engine call ---------------------------------------------------------------


def _run(
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


def _variables(vars_file: IO[str] | None, pairs: Sequence[str]) -> dict[str, Any]:
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


# --- the command group ---------------------------------------------------------------------


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Example: rochallor --engine http://localhost:8080 instances list --status FAILED",
)
@click.option(
    "--engine",
    metavar="URL",
    envvar="ROCHALLOR_ENGINE_URL",
    show_envvar=True,
    help=f"Engine REST URL [default: {DEFAULT_ENGINE_URL}].",
)
@click.option(
    "--token",
    envvar="ROCHALLOR_TOKEN",
    show_envvar=True,
    help="Bearer token sent as 'Authorization: Bearer TOKEN' (for engines with access control).",
)
@click.option(
    "-o",
    "--output",
    type=_OUTPUT,
    default="table",
    envvar="ROCHALLOR_OUTPUT",
    show_envvar=True,
    show_default=True,
    help="Aligned text for people or JSON for scripts.",
)
@click.option(
    "--request-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="Time limit of each request to the engine.",
)
@click.version_option(package_name="rochallor-sdk", prog_name="rochallor")
@click.pass_context
def cli(
    ctx: click.Context,
    engine: str | None,
    token: str | None,
    output: str,
    request_timeout: float,
) -> None:
    """Deploy, start, inspect and act on Rochallor workflows; run workers.

    Exit codes: 0 ok, 1 instance FAILED/CANCELLED, 2 usage, 3 invalid, 4 not found,
    5 conflict, 6 engine unreachable, 7 engine error, 8 timeout, 130 interrupted.
    """
    ctx.obj = Options(engine=engine, token=token, output=output, request_timeout=request_timeout)


# --- deploy --------------------------------------------------------------------------------


def _load_validator() -> ModuleType | None:
    try:
        return importlib.import_module("rochallor_validator")
    except ImportError:
        return None


def _read_definition(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CliError(f"{path}: cannot read: {reason}", code=ExitCode.USAGE) from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise CliError(f"{path}: not valid JSON: {exc}", code=ExitCode.INVALID) from None
    if not isinstance(document, dict):
        raise CliError(
            f"{path}: a definition is a JSON object, got {type(document).__name__}",
            code=ExitCode.INVALID,
        )
    return document


def _issue_line(path: Path, where: str, message: str, code: str) -> str:
    location = f"{where}: " if where else ""
    return f"{path}: {location}{message} ({code})" if code else f"{path}: {location}{message}"


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Validate locally only; upload nothing.")
@click.option(
    "--no-validate", is_flag=True, help="Skip local validation; rely on the engine's checks."
)
@common_options
def deploy(files: tuple[Path, ...], dry_run: bool, no_validate: bool) -> None:
    """Validate and upload workflow definition files; print each id and version.

    When rochallor-validator is installed, every file is validated first (errors name the
    JSON path) and nothing is uploaded unless all files are valid. Without it the engine
    validates, and its answer is reported the same way.

    \b
    Example:
      rochallor deploy examples/order-fulfilment.json
    """
    opts = _options()
    validator = None if no_validate else _load_validator()
    if dry_run and validator is None:
        raise CliError(
            "--dry-run needs the validator: pip install rochallor-validator "
            "(or rochallor-sdk[validate])",
            code=ExitCode.USAGE,
        )
    documents = [(path, _read_definition(path)) for path in files]
    problems: list[str] = []
    warnings: list[str] = []
    if validator is not None:
        for path, document in documents:
            report = validator.check_definition(document)
            problems += [_issue_line(path, i.path, i.message, i.code) for i in report.errors]
            warnings += [_issue_line(path, i.path, i.message, i.code) for i in report.warnings]
    for line in warnings:
        click.echo(f"warning: {line}", err=True)
    if problems:
        raise CliError(*problems, code=ExitCode.INVALID)
    if dry_run:
        if opts.json:
            opts.emit_json([{"file": str(path), "id": doc.get("id")} for path, doc in documents])
        else:
            for path, document in documents:
                click.echo(f"{path}: valid ({document.get('id')})")
        return

    async def upload(client: _rest.RestClient) -> list[dict[str, Any]]:
        summaries = []
        for path, document in documents:
            try:
                summary = await client.upload_definition(document)
            except _errors.ApiError as exc:
                if exc.status == 400:
                    raise _rejected(path, exc) from None
                raise
            if validator is None:  # else the same warnings were printed already
                for warning in summary.get("warnings") or []:
                    click.echo(f"warning: {_detail_line(path, warning)}", err=True)
            summaries.append({"file": str(path), **summary})
            if not opts.json:
                click.echo(
                    f"deployed {summary.get('id')} version {summary.get('version')} ({path})"
                )
        return summaries

    summaries = _run(opts, upload)
    if opts.json:
        opts.emit_json(summaries)


def _detail_line(path: Path, detail: Mapping[str, Any]) -> str:
    """A ``{"code", "message", "stepId"}`` object of the engine as one line."""
    return _issue_line(path, "", str(detail.get("message", "")), str(detail.get("code") or ""))


def _rejected(path: Path, exc: _errors.ApiError) -> CliError:
    if exc.details:
        lines = [_detail_line(path, detail) for detail in exc.details]
        return CliError(*lines, code=ExitCode.INVALID)
    return CliError(
        f"{path}: rejected by the engine: {_format.one_line(exc.reason)}", code=ExitCode.INVALID
    )


# --- definitions ---------------------------------------------------------------------------


@cli.group()
def definitions() -> None:
    """List and show deployed workflow definitions."""


@definitions.command("list")
@click.option("--keyword", help="Only definitions whose id or name contains this text.")
@click.option("--page", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--page-size", type=click.IntRange(1, 1000), default=50, show_default=True)
@common_options
def definitions_list(keyword: str | None, page: int, page_size: int) -> None:
    """List deployed definitions (latest version of each).

    \b
    Example:
      rochallor definitions list --keyword order
    """
    opts = _options()
    answer = _run(
        opts, lambda c: c.list_definitions(keyword=keyword, page=page, page_size=page_size)
    )
    if opts.json:
        opts.emit_json(answer)
        return
    opts.emit(_format.definitions_table(answer["items"]))
    _footer(answer, page, page_size)


@definitions.command("show")
@click.argument("definition_id", metavar="ID")
@click.option("--version", type=click.IntRange(min=1), help="A given version (default: latest).")
@common_options
def definitions_show(definition_id: str, version: int | None) -> None:
    """Show a definition and its steps.

    \b
    Example:
      rochallor definitions show SHOP::order-fulfilment --version 1
    """
    opts = _options()
    subject = f"definition {definition_id}" + (f" version {version}" if version else "")
    definition = _run(opts, lambda c: c.get_definition(definition_id, version), subject=subject)
    if opts.json:
        opts.emit_json(definition)
    else:
        opts.emit(_format.definition_view(definition))


def _footer(answer: Mapping[str, Any], page: int, page_size: int) -> None:
    shown, total = len(answer["items"]), int(answer["total"])
    if total > (page + 1) * page_size or page > 0:
        click.echo(f"({shown} of {total}; page {page}, --page to see more)", err=True)
    elif shown == 0:
        click.echo("(none)", err=True)


# --- start and follow ----------------------------------------------------------------------


class _Progress:
    """Shows a followed instance: subclasses print lines, draw a live view, or stay quiet."""

    def update(
        self,
        instance: Mapping[str, Any],
        history: Sequence[Mapping[str, Any]],
        changed: Sequence[Mapping[str, Any]],
    ) -> None:
        pass

    def finish(self, instance: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class _PlainProgress(_Progress):
    """One line per step change and per instance status change (for pipes and logs)."""

    def __init__(self) -> None:
        self._status: str | None = None

    def update(
        self,
        instance: Mapping[str, Any],
        history: Sequence[Mapping[str, Any]],
        changed: Sequence[Mapping[str, Any]],
    ) -> None:
        for item in changed:
            click.echo(_format.step_line(item))
        status = str(instance.get("status"))
        changed_status = status != self._status and status not in _format.TERMINAL_STATUSES
        if changed_status and (self._status is not None or status != "ACTIVE"):
            click.echo(_format.instance_line(instance))
        self._status = status

    def finish(self, instance: Mapping[str, Any]) -> None:
        click.echo(_format.instance_line(instance))


class _LiveProgress(_Progress):
    """A live table of the steps, redrawn in place (terminals only)."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._live = Live(console=console, refresh_per_second=8, transient=False)
        self._live.start()

    def update(
        self,
        instance: Mapping[str, Any],
        history: Sequence[Mapping[str, Any]],
        changed: Sequence[Mapping[str, Any]],
    ) -> None:
        self._live.update(_format.live_view(instance, history), refresh=True)

    def finish(self, instance: Mapping[str, Any]) -> None:
        self.close()
        line = _format.instance_line(instance)
        style = {"COMPLETED": "bold green", "FAILED": "bold red"}.get(
            str(instance.get("status")), "bold"
        )
        self._console.print(line, style=style, highlight=False)

    def close(self) -> None:
        if self._live.is_started:
            self._live.stop()


def _progress(opts: Options) -> _Progress:
    if opts.json:
        return _Progress()
    if opts.console.is_terminal and not opts.console.is_dumb_terminal:
        return _LiveProgress(opts.console)
    return _PlainProgress()


async def follow(
    client: _rest.RestClient,
    instance_id: str,
    progress: _Progress,
    *,
    wait_limit: float | None,
    interval: float = FOLLOW_INTERVAL,
) -> dict[str, Any]:
    """Look at the instance and its history until it ends; return the final instance.

    Raises :class:`CliError` (``TIMEOUT``) when ``wait_limit`` seconds pass first.
    """
    tracker = _format.StepTracker()
    deadline = None if wait_limit is None else time.monotonic() + wait_limit
    while True:
        instance = await client.get_instance(instance_id)
        history = await client.get_history(instance_id)
        progress.update(instance, history, tracker.update(history))
        if instance.get("status") in _format.TERMINAL_STATUSES:
            progress.finish(instance)
            return instance
        if deadline is not None and time.monotonic() >= deadline:
            progress.close()
            raise CliError(
                f"instance {instance_id} is still {instance.get('status')} after {wait_limit:g}s",
                code=ExitCode.TIMEOUT,
            )
        await asyncio.sleep(interval)


def _follow_and_exit(opts: Options, instance_id: str, timeout: float | None) -> None:
    progress = _progress(opts)
    try:
        final = _run(
            opts,
            lambda c: follow(c, instance_id, progress, wait_limit=timeout),
            subject=f"instance {instance_id}",
        )
    finally:
        progress.close()
    if opts.json:
        opts.emit_json(final)
    if final.get("status") != "COMPLETED":
        raise click.exceptions.Exit(ExitCode.NOT_COMPLETED)


_TIMEOUT = click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Give up waiting after this long (exit code 8).",
)


@cli.command()
@click.argument("definition_id", metavar="ID")
@variable_options
@click.option("--business-key", help="Your own key for the instance (e.g. an order number).")
@click.option("--version", type=click.IntRange(min=1), help="Pin a definition version.")
@click.option(
    "--wait", is_flag=True, help="Follow the instance until it ends; exit 1 unless COMPLETED."
)
@_TIMEOUT
@common_options
def start(
    definition_id: str,
    pairs: tuple[str, ...],
    vars_file: IO[str] | None,
    business_key: str | None,
    version: int | None,
    wait: bool,
    timeout: float | None,
) -> None:
    """Start an instance of a definition; print its id.

    With --wait, show the steps as they happen (a live view in a terminal, one line per step
    when piped) until the instance ends.

    \b
    Example:
      rochallor start SHOP::order-fulfilment --var orderId=o-1001 --var quantity=3 --wait
    """
    opts = _options()
    if timeout is not None and not wait:
        raise CliError("--timeout only applies with --wait", code=ExitCode.USAGE)
    variables = _variables(vars_file, pairs)
    instance = _run(
        opts,
        lambda c: c.start_instance(
            definition_id, variables, version=version, business_key=business_key
        ),
        subject=f"definition {definition_id}",
    )
    if not wait:
        if opts.json:
            opts.emit_json(instance)
        else:
            click.echo(
                f"started instance {instance['id']} of {instance.get('definitionId')} "
                f"v{instance.get('definitionVersion')} ({instance.get('status')})"
            )
        return
    if not opts.json:
        click.echo(
            f"started instance {instance['id']} of {instance.get('definitionId')} "
            f"v{instance.get('definitionVersion')}"
        )
    _follow_and_exit(opts, str(instance["id"]), timeout)


# --- instances -----------------------------------------------------------------------------


@cli.group()
def instances() -> None:
    """List, show and watch workflow instances."""


@instances.command("list")
@click.option("--status", type=click.Choice(_format.INSTANCE_STATUSES, case_sensitive=False))
@click.option("--definition", "definition_id", metavar="ID", help="Only instances of this id.")
@click.option("--business-key", help="Only instances with this business key.")
@click.option("--page", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--page-size", type=click.IntRange(1, 1000), default=50, show_default=True)
@common_options
def instances_list(
    status: str | None,
    definition_id: str | None,
    business_key: str | None,
    page: int,
    page_size: int,
) -> None:
    """List instances, newest first, as an aligned table.

    \b
    Example:
      rochallor instances list --status WAITING --definition SHOP::order-fulfilment
    """
    opts = _options()
    answer = _run(
        opts,
        lambda c: c.list_instances(
            definition_id=definition_id,
            status=status.upper() if status else None,
            business_key=business_key,
            page=page,
            page_size=page_size,
        ),
    )
    if opts.json:
        opts.emit_json(answer)
        return
    opts.emit(_format.instances_table(answer["items"]))
    _footer(answer, page, page_size)


@instances.command("show")
@click.argument("instance_id", metavar="ID")
@common_options
def instances_show(instance_id: str) -> None:
    """Show an instance: status, current steps, variables and history.

    \b
    Example:
      rochallor instances show 01JNQ7Z3K5V2M8R4T6W9XBCDEF
    """
    opts = _options()

    async def load(client: _rest.RestClient) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        instance = await client.get_instance(instance_id)
        return instance, await client.get_history(instance_id)

    instance, history = _run(opts, load, subject=f"instance {instance_id}")
    if opts.json:
        opts.emit_json({**instance, "history": history})
        return
    opts.emit(_format.instance_header(instance))
    click.echo("\nVariables")
    click.echo(_indent(_format.variables_text(instance.get("variables") or {})))
    click.echo("\nHistory")
    opts.emit(_format.history_table(history))


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


@instances.command("watch")
@click.argument("instance_id", metavar="ID")
@_TIMEOUT
@common_options
def instances_watch(instance_id: str, timeout: float | None) -> None:
    """Follow an instance until it ends; exit 1 unless it COMPLETED.

    \b
    Example:
      rochallor instances watch 01JNQ7Z3K5V2M8R4T6W9XBCDEF --timeout 60
    """
    _follow_and_exit(_options(), instance_id, timeout)


# --- acting on instances -------------------------------------------------------------------


@cli.group("user-task")
def user_task() -> None:
    """Act on user tasks (steps of type USER_TASK)."""


@user_task.command("complete")
@click.argument("instance_id", metavar="INSTANCE")
@click.argument("step_id", metavar="STEP")
@variable_options
@click.option("--worker-id", help="Who completed the task (recorded by the engine).")
@common_options
def user_task_complete(
    instance_id: str,
    step_id: str,
    pairs: tuple[str, ...],
    vars_file: IO[str] | None,
    worker_id: str | None,
) -> None:
    """Complete the user task STEP of INSTANCE, merging the given variables.

    \b
    Example:
      rochallor user-task complete 01JNQ7Z3K5V2M8R4T6W9XBCDEF escalate-review --var approved=true
    """
    opts = _options()
    variables = _variables(vars_file, pairs)
    _run(
        opts,
        lambda c: c.complete_user_task(instance_id, step_id, variables, worker_id=worker_id),
        subject=f"user task {step_id} of instance {instance_id}",
    )
    _done(opts, {"instanceId": instance_id, "stepId": step_id, "completed": True})


@cli.command()
@click.argument("instance_id", metavar="INSTANCE")
@click.argument("step_id", metavar="STEP")
@variable_options
@common_options
def signal(
    instance_id: str, step_id: str, pairs: tuple[str, ...], vars_file: IO[str] | None
) -> None:
    """Signal the WAIT step STEP of INSTANCE, merging the given variables.

    \b
    Example:
      rochallor signal 01JNQ7Z3K5V2M8R4T6W9XBCDEF await-payment --var paid=true
    """
    opts = _options()
    variables = _variables(vars_file, pairs)
    _run(
        opts,
        lambda c: c.signal(instance_id, step_id, variables),
        subject=f"wait step {step_id} of instance {instance_id}",
    )
    _done(opts, {"instanceId": instance_id, "stepId": step_id, "signalled": True})


@cli.command()
@click.argument("instance_id", metavar="INSTANCE")
@click.option("--reason", help="Why (stored as the instance's failure reason).")
@common_options
def cancel(instance_id: str, reason: str | None) -> None:
    """Cancel an ACTIVE or WAITING instance.

    \b
    Example:
      rochallor cancel 01JNQ7Z3K5V2M8R4T6W9XBCDEF --reason "customer withdrew"
    """
    opts = _options()
    instance = _run(
        opts, lambda c: c.cancel_instance(instance_id, reason), subject=f"instance {instance_id}"
    )
    if opts.json:
        opts.emit_json(instance)
    else:
        click.echo(f"instance {instance.get('id', instance_id)} {instance.get('status')}")


def _done(opts: Options, result: dict[str, Any]) -> None:
    if opts.json:
        opts.emit_json(result)
    elif result.get("completed"):
        click.echo(f"completed user task {result['stepId']} of instance {result['instanceId']}")
    else:
        click.echo(f"signalled {result['stepId']} of instance {result['instanceId']}")


# --- worker --------------------------------------------------------------------------------


def load_registry(spec: str) -> _registry.Registry:
    """Import ``MODULE:REGISTRY`` (a dotted module or a ``.py`` path) and return the registry."""
    try:
        module_name, attribute = _format.parse_registry_spec(spec)
    except _format.BadArgument as exc:
        raise CliError(str(exc), code=ExitCode.USAGE) from None
    try:
        module = _import(module_name)
    except CliError:
        raise
    except Exception as exc:
        raise CliError(_import_failure(module_name, exc), code=ExitCode.USAGE) from None
    registry = getattr(module, attribute, None)
    if registry is None:
        raise CliError(
            f"{module_name} has no attribute {attribute!r} (expected a rochallor_sdk.Registry)",
            code=ExitCode.USAGE,
        )
    if not isinstance(registry, _registry.Registry):
        raise CliError(
            f"{module_name}:{attribute} is a {type(registry).__name__}, "
            "not a rochallor_sdk.Registry",
            code=ExitCode.USAGE,
        )
    return registry


def _import(module_name: str) -> ModuleType:
    if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
        path = Path(module_name).resolve()
        if not path.is_file():
            raise CliError(f"{module_name}: no such file", code=ExitCode.USAGE)
        sys.path.insert(0, str(path.parent))
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise CliError(f"{module_name}: cannot be imported", code=ExitCode.USAGE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        return module
    # Like `python -m`: modules of the current directory are importable.
    sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise CliError(
                f"no module named {module_name!r} (run from the folder that holds it, "
                "or give a path such as handlers.py:registry)",
                code=ExitCode.USAGE,
            ) from None
        raise


def _import_failure(module_name: str, exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"importing {module_name} failed: {type(exc).__name__}: {exc}{where}"


def _logged(job_type: str, handler: _registry.Handler) -> _registry.Handler:
    """``handler``, logging each job it finishes (the worker logs failures itself)."""

    def log(ctx: Mapping[str, Any], started: float) -> None:
        took = (time.monotonic() - started) * 1000
        logger.info(
            "%s: job %s of instance %s done in %.0fms",
            job_type,
            ctx.get("id"),
            ctx.get("instanceId"),
            took,
        )

    if _registry.is_async_handler(handler):

        @functools.wraps(handler)
        async def run_async(ctx: dict[str, Any]) -> Any:
            started = time.monotonic()
            result = await handler(ctx)
            log(ctx, started)
            return result

        return run_async

    @functools.wraps(handler)
    def run_sync(ctx: dict[str, Any]) -> Any:
        started = time.monotonic()
        result = handler(ctx)
        log(ctx, started)
        return result

    return run_sync


@cli.command()
@click.argument("spec", metavar="MODULE:REGISTRY")
@click.option(
    "--job-type",
    "job_types",
    multiple=True,
    metavar="TYPE",
    help="Only handle this job type of the registry. Repeatable [default: all of them].",
)
@click.option(
    "--parallelism",
    type=click.IntRange(min=1),
    help="Jobs handled at once [default: 16; env ROCHALLOR_WORKER_PARALLELISM].",
)
@click.option(
    "--transport",
    type=click.Choice(["rest", "grpc"]),
    help="rest (default) or grpc; with grpc, --engine is the gRPC target (localhost:9090).",
)
@click.option("--worker-id", help="Lock owner shown by the engine [default: host-pid-random].")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve /metrics and /healthz on this port.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
)
@common_options
def worker(
    spec: str,
    job_types: tuple[str, ...],
    parallelism: int | None,
    transport: str | None,
    worker_id: str | None,
    metrics_port: int | None,
    log_level: str,
) -> None:
    """Run a worker for the handlers of a Registry in your module, until Ctrl-C.

    MODULE is a module importable from the current folder (shop.handlers) or a .py file;
    REGISTRY is the name of its rochallor_sdk.Registry (default: registry). Other settings
    come from the ROCHALLOR_WORKER_* variables (docs/sdk.md).

    \b
    Example:
      rochallor worker examples.order_fulfilment:registry --parallelism 4
    """
    opts = _options()
    registry = load_registry(spec)
    unknown = [job_type for job_type in job_types if job_type not in registry]
    if unknown:
        raise CliError(
            f"job type {unknown[0]!r} is not in {spec} (it has: {', '.join(registry.job_types)})",
            code=ExitCode.USAGE,
        )
    selected = _registry.Registry()
    for job_type in job_types or registry.job_types:
        handler = registry.get(job_type)
        assert handler is not None
        selected.register(job_type, _logged(job_type, handler))
    if len(selected) == 0:
        raise CliError(f"{spec} has no handlers registered", code=ExitCode.USAGE)

    engine_url = opts.engine
    if engine_url is None and transport == "grpc" and not _config_env("ENGINE_URL"):
        engine_url = "localhost:9090"
    try:
        settings = _config.WorkerSettings.from_env(
            engine_url=engine_url,
            transport=transport,
            worker_id=worker_id,
            parallelism=parallelism,
            metrics_port=metrics_port,
            token=opts.token,
        )
    except _errors.ConfigurationError as exc:
        raise CliError(str(exc), code=ExitCode.USAGE) from None
    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(message)s",
    )
    try:
        _worker.Worker(selected, settings=settings).run()
    except _errors.RochallorSdkError as exc:
        raise api_failure(exc, settings.engine_url) from None


def _config_env(name: str) -> str | None:
    return os.environ.get(_config.ENV_PREFIX + name)


def main() -> None:
    """Console-script entry point: run :data:`cli`; never show a traceback."""
    try:
        cli.main(prog_name="rochallor")
    except click.exceptions.Exit as exc:  # pragma: no cover - standalone mode exits itself
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug of ours: still one line, not a traceback
        click.echo(f"error: unexpected {type(exc).__name__}: {exc}", err=True)
        sys.exit(ExitCode.ENGINE_ERROR)


__all__ = ["CliError", "ExitCode", "api_failure", "cli", "follow", "load_registry", "main"]
