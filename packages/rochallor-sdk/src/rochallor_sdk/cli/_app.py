"""The ``rochallor`` command: deploy, start, inspect and act on workflows, run workers.

Every admin command talks to the engine's REST API through :class:`RestClient`. Errors are
printed as one ``error: …`` line per problem on stderr, with the exit codes of
:class:`ExitCode`; a traceback is never shown.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import click

from rochallor_sdk import _errors
from rochallor_sdk.cli import _format
from rochallor_sdk.cli._common import (
    DEFAULT_ENGINE_URL,
    OUTPUT,
    CliError,
    ExitCode,
    Options,
    api_failure,
    common_options,
    options,
    read_variables,
    run,
    variable_options,
)
from rochallor_sdk.cli._follow import TIMEOUT, follow_and_exit
from rochallor_sdk.cli._worker_command import worker
from rochallor_sdk.client import _rest

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
    type=OUTPUT,
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
    opts = options()
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

    summaries = run(opts, upload)
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
    opts = options()
    answer = run(
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
    opts = options()
    subject = f"definition {definition_id}" + (f" version {version}" if version else "")
    definition = run(opts, lambda c: c.get_definition(definition_id, version), subject=subject)
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


@cli.command()
@click.argument("definition_id", metavar="ID")
@variable_options
@click.option("--business-key", help="Your own key for the instance (e.g. an order number).")
@click.option("--version", type=click.IntRange(min=1), help="Pin a definition version.")
@click.option(
    "--wait", is_flag=True, help="Follow the instance until it ends; exit 1 unless COMPLETED."
)
@TIMEOUT
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
    opts = options()
    if timeout is not None and not wait:
        raise CliError("--timeout only applies with --wait", code=ExitCode.USAGE)
    variables = read_variables(vars_file, pairs)
    instance = run(
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
    follow_and_exit(opts, str(instance["id"]), timeout)


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
    opts = options()
    answer = run(
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
    opts = options()

    async def load(client: _rest.RestClient) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        instance = await client.get_instance(instance_id)
        return instance, await client.get_history(instance_id)

    instance, history = run(opts, load, subject=f"instance {instance_id}")
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
@TIMEOUT
@common_options
def instances_watch(instance_id: str, timeout: float | None) -> None:
    """Follow an instance until it ends; exit 1 unless it COMPLETED.

    \b
    Example:
      rochallor instances watch 01JNQ7Z3K5V2M8R4T6W9XBCDEF --timeout 60
    """
    follow_and_exit(options(), instance_id, timeout)


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
    opts = options()
    variables = read_variables(vars_file, pairs)
    run(
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
    opts = options()
    variables = read_variables(vars_file, pairs)
    run(
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
    opts = options()
    instance = run(
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


cli.add_command(worker)


def main() -> None:
    """Console-script entry point: run :data:`cli`; never show a traceback."""
    try:
        cli.main(prog_name="rochallor")
    except click.exceptions.Exit as exc:  # pragma: no cover - standalone mode exits itself
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug of ours: still one line, not a traceback
        click.echo(f"error: unexpected {type(exc).__name__}: {exc}", err=True)
        sys.exit(ExitCode.ENGINE_ERROR)


__all__ = ["CliError", "ExitCode", "api_failure", "cli", "main"]
