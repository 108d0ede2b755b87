"""Pure helpers of the command line: argument parsing and the text the commands print.

Nothing here does I/O; the renderables are Rich objects printed by the caller.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
from rich.console import Group, RenderableType
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

TERMINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
INSTANCE_STATUSES = ("ACTIVE", "WAITING", "COMPLETED", "FAILED", "CANCELLED")

_STATUS_STYLES = {
    "ACTIVE": "cyan",
    "RUNNING": "cyan",
    "WAITING": "yellow",
    "COMPLETED": "green",
    "FAILED": "bold red",
    "CANCELLED": "magenta",
    "SKIPPED": "dim",
}


class BadArgument(ValueError):
    """A command-line value that cannot be used (the message says which and why)."""


# --- arguments -----------------------------------------------------------------------------


def parse_var(text: str) -> tuple[str, Any]:
    """``key=value`` → ``(key, value)``.

    The value is read as JSON when it is valid JSON (``3``, ``true``, ``null``, ``[1, 2]``,
    ``{"a": 1}``, ``"42"``), else taken as a plain string: ``orderId=o-1001`` gives the
    string ``"o-1001"`` and ``quantity=3`` the number 3.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise BadArgument(f"--var {text!r}: expected KEY=VALUE, e.g. --var quantity=3")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def merge_variables(base: Mapping[str, Any] | None, pairs: Iterable[str]) -> dict[str, Any]:
    """``base`` (from ``--vars-file``) overlaid with the ``--var KEY=VALUE`` pairs, in order."""
    variables = dict(base or {})
    for text in pairs:
        key, value = parse_var(text)
        variables[key] = value
    return variables


def parse_vars_document(text: str, source: str) -> dict[str, Any]:
    """The contents of a ``--vars-file``: a JSON object."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise BadArgument(f"{source}: not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadArgument(f"{source}: must hold a JSON object, got {type(document).__name__}")
    return document


def parse_registry_spec(spec: str) -> tuple[str, str]:
    """``MODULE:REGISTRY`` → ``(module, attribute)``; ``MODULE`` alone means ``MODULE:registry``.

    ``MODULE`` is a dotted module name (``handlers``, ``shop.workers``) or a path to a
    ``.py`` file (``examples/order_fulfilment.py``).
    """
    module, sep, attribute = spec.rpartition(":")
    if not sep:
        module, attribute = spec, "registry"
    module, attribute = module.strip(), attribute.strip()
    if not module or not attribute.isidentifier():
        raise BadArgument(
            f"{spec!r}: expected MODULE:REGISTRY, e.g. handlers:registry or handlers.py:registry"
        )
    return module, attribute


# --- small text helpers --------------------------------------------------------------------


def parse_timestamp(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def short_time(value: Any) -> str:
    """An RFC 3339 timestamp as ``2026-01-31 12:34:56`` (UTC), ``-`` when absent."""
    moment = parse_timestamp(value)
    if moment is None:
        return "-"
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def clock_time(value: Any) -> str:
    """An RFC 3339 timestamp as ``12:34:56.789`` (UTC)."""
    moment = parse_timestamp(value)
    if moment is None:
        return "--:--:--.---"
    return moment.astimezone(datetime.UTC).strftime("%H:%M:%S.%f")[:-3]


def duration(start: Any, end: Any) -> str:
    """Time between two timestamps: ``850ms``, ``2.4s``, ``3m05s``; ``-`` when unknown."""
    first, last = parse_timestamp(start), parse_timestamp(end)
    if first is None or last is None:
        return "-"
    seconds = max((last - first).total_seconds(), 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def one_line(text: str) -> str:
    """Collapse a multi-line engine reason into one line."""
    return "; ".join(part.strip() for part in text.splitlines() if part.strip())


def styled_status(status: str) -> Text:
    return Text(status, style=_STATUS_STYLES.get(status, ""))


def _table(*columns: str) -> Table:
    """An aligned table without borders (columns split by spaces, like ``kubectl get``)."""
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for column in columns:
        table.add_column(column, no_wrap=True)
    return table


# --- definitions ---------------------------------------------------------------------------


def definitions_table(items: Sequence[Mapping[str, Any]]) -> Table:
    table = _table("ID", "VERSION", "NAME", "UPLOADED")
    for item in items:
        table.add_row(
            str(item.get("id", "")),
            str(item.get("version", "")),
            str(item.get("name", "")),
            short_time(item.get("uploadedAt")),
        )
    return table


def _next_of(step: Mapping[str, Any]) -> str:
    targets: list[str] = []
    if step.get("nextStep"):
        targets.append(str(step["nextStep"]))
    conditional = step.get("conditionalNextSteps")
    if isinstance(conditional, Mapping):
        targets.extend(f"{target} if {condition}" for condition, target in conditional.items())
    parallel = step.get("parallelNextSteps")
    if isinstance(parallel, list):
        targets.extend(str(target) for target in parallel)
    return ", ".join(targets) or "-"


def definition_view(definition: Mapping[str, Any]) -> RenderableType:
    """Header lines and one row per step."""
    header = Table.grid(padding=(0, 2))
    header.add_column(style="bold")
    header.add_column()
    header.add_row("Definition", str(definition.get("id", "")))
    if definition.get("version") is not None:
        header.add_row("Version", str(definition["version"]))
    header.add_row("Name", str(definition.get("name", "")))
    if definition.get("description"):
        header.add_row("Description", str(definition["description"]))
    steps = _table("STEP", "TYPE", "JOB TYPE", "NEXT")
    for step in definition.get("steps") or []:
        if isinstance(step, Mapping):
            steps.add_row(
                str(step.get("id", "")),
                str(step.get("type", "")),
                str(step.get("jobType") or "-"),
                _next_of(step),
            )
    return Group(header, Text(""), steps)


# --- instances -----------------------------------------------------------------------------


def instances_table(items: Sequence[Mapping[str, Any]]) -> Table:
    table = _table("ID", "DEFINITION", "STATUS", "BUSINESS KEY", "STARTED", "CURRENT STEPS")
    for item in items:
        table.add_row(
            str(item.get("id", "")),
            f"{item.get('definitionId', '')} v{item.get('definitionVersion', '?')}",
            styled_status(str(item.get("status", ""))),
            str(item.get("businessKey") or "-"),
            short_time(item.get("startedAt")),
            ", ".join(item.get("currentStepIds") or []) or "-",
        )
    return table


def history_table(history: Sequence[Mapping[str, Any]], *, spinners: bool = False) -> Table:
    """One row per step execution; with ``spinners``, running steps get a spinner."""
    table = _table("STEP", "TYPE", "ATTEMPT", "STATUS", "STARTED", "TOOK", "REASON")
    for item in history:
        status = str(item.get("status", ""))
        status_cell: RenderableType = styled_status(status)
        if spinners and status == "RUNNING":
            status_cell = Spinner("dots", text=styled_status(status))
        table.add_row(
            str(item.get("stepId", "")),
            str(item.get("stepType", "")),
            str(item.get("attemptNumber", "")),
            status_cell,
            clock_time(item.get("startedAt")),
            duration(item.get("startedAt"), item.get("endedAt")),
            str(item.get("failureReason") or ""),
        )
    return table


def instance_header(instance: Mapping[str, Any]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("Instance", str(instance.get("id", "")))
    grid.add_row(
        "Definition",
        f"{instance.get('definitionId', '')} v{instance.get('definitionVersion', '?')}",
    )
    grid.add_row("Status", styled_status(str(instance.get("status", ""))))
    if instance.get("businessKey"):
        grid.add_row("Business key", str(instance["businessKey"]))
    grid.add_row("Started", short_time(instance.get("startedAt")))
    if instance.get("completedAt"):
        grid.add_row(
            "Ended",
            f"{short_time(instance['completedAt'])} "
            f"(took {duration(instance.get('startedAt'), instance['completedAt'])})",
        )
    if instance.get("failureReason"):
        grid.add_row("Reason", str(instance["failureReason"]))
    grid.add_row("Current steps", ", ".join(instance.get("currentStepIds") or []) or "-")
    return grid


def variables_text(variables: Mapping[str, Any]) -> str:
    return json.dumps(dict(variables), indent=2, sort_keys=True, ensure_ascii=False)


# --- following an instance -----------------------------------------------------------------


@attrs.define
class StepTracker:
    """Remembers the step executions seen so far; :meth:`update` returns what changed."""

    _seen: dict[str, str] = attrs.field(factory=dict)

    def update(self, history: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """Items of ``history`` that are new or whose status changed since the last call."""
        changed = []
        for item in history:
            key = str(item.get("id") or f"{item.get('stepId')}#{item.get('attemptNumber')}")
            status = str(item.get("status", ""))
            if self._seen.get(key) != status:
                self._seen[key] = status
                changed.append(item)
        return changed


def step_line(item: Mapping[str, Any]) -> str:
    """One progress line: ``12:00:01.250  reserve-stock  SERVICE_TASK  COMPLETED  (35ms)``."""
    status = str(item.get("status", ""))
    when = item.get("endedAt") if status != "RUNNING" and item.get("endedAt") else None
    line = (
        f"{clock_time(when or item.get('startedAt'))}  {item.get('stepId', ''):<20} "
        f"{item.get('stepType', ''):<16} {status}"
    )
    attempt = item.get("attemptNumber")
    if isinstance(attempt, int) and attempt > 1:
        line += f"  attempt {attempt}"
    if status != "RUNNING" and item.get("endedAt"):
        line += f"  ({duration(item.get('startedAt'), item.get('endedAt'))})"
    if item.get("failureReason"):
        line += f"  {one_line(str(item['failureReason']))}"
    return line


def instance_line(instance: Mapping[str, Any]) -> str:
    """``instance 01J… COMPLETED in 1.2s`` / ``… FAILED: reason`` / ``… WAITING at a, b``."""
    status = str(instance.get("status", ""))
    line = f"instance {instance.get('id', '')} {status}"
    if status in TERMINAL_STATUSES and instance.get("completedAt"):
        line += f" in {duration(instance.get('startedAt'), instance.get('completedAt'))}"
    if status == "WAITING" and instance.get("currentStepIds"):
        line += " at " + ", ".join(instance["currentStepIds"])
    if instance.get("failureReason"):
        line += f": {one_line(str(instance['failureReason']))}"
    return line


def live_view(instance: Mapping[str, Any], history: Sequence[Mapping[str, Any]]) -> RenderableType:
    """What the live progress view shows: a title line and the step table with spinners."""
    title = Text.assemble(
        ("instance ", "bold"),
        (str(instance.get("id", "")), "bold"),
        f"  {instance.get('definitionId', '')} v{instance.get('definitionVersion', '?')}  ",
        styled_status(str(instance.get("status", ""))),
    )
    return Group(title, history_table(history, spinners=True))


def json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


__all__ = [
    "INSTANCE_STATUSES",
    "TERMINAL_STATUSES",
    "BadArgument",
    "StepTracker",
    "clock_time",
    "definition_view",
    "definitions_table",
    "duration",
    "history_table",
    "instance_header",
    "instance_line",
    "instances_table",
    "json_text",
    "live_view",
    "merge_variables",
    "one_line",
    "parse_registry_spec",
    "parse_timestamp",
    "parse_var",
    "parse_vars_document",
    "short_time",
    "step_line",
    "styled_status",
    "variables_text",
]
