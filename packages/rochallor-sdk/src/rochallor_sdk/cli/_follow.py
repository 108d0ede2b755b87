"""Following an instance until it ends: a live view in a terminal, plain lines otherwise."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import click
from rich.console import Console
from rich.live import Live

from rochallor_sdk.cli import _format
from rochallor_sdk.cli._common import CliError, ExitCode, Options, run
from rochallor_sdk.client import _rest

#: Pause between two looks at a followed instance.
FOLLOW_INTERVAL = 0.25


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


def follow_and_exit(opts: Options, instance_id: str, timeout: float | None) -> None:
    progress = _progress(opts)
    try:
        final = run(
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


TIMEOUT = click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Give up waiting after this long (exit code 8).",
)
