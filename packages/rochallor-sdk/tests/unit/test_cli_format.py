"""The pure parts of the ``rochallor`` command: argument parsing, formatting, error mapping."""

from __future__ import annotations

import io
import re
import sys
from typing import Any

import click
import pytest
from click.testing import CliRunner
from rich.console import Console

from rochallor_sdk import ApiError, Conflict, NotFound, Registry, TransportError
from rochallor_sdk.cli import CliError, ExitCode, _common, _format, _worker_command, cli


def _render(renderable: Any) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=300, no_color=True, force_terminal=False).print(renderable)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())


# --- --var and --vars-file -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("quantity=3", ("quantity", 3)),
        ("amount=49.99", ("amount", 49.99)),
        ("express=true", ("express", True)),
        ("note=null", ("note", None)),
        ("orderId=o-1001", ("orderId", "o-1001")),
        ('code="42"', ("code", "42")),
        ("items=[1, 2]", ("items", [1, 2])),
        ('address={"city": "Cork"}', ("address", {"city": "Cork"})),
        ("empty=", ("empty", "")),
        ("expr=a=b", ("expr", "a=b")),
        (" spaced =x", ("spaced", "x")),
    ],
)
def test_parse_var_reads_json_else_a_string(text: str, expected: tuple[str, Any]) -> None:
    assert _format.parse_var(text) == expected


@pytest.mark.parametrize("text", ["novalue", "=3", "  =x", ""])
def test_parse_var_needs_a_key_and_an_equals_sign(text: str) -> None:
    with pytest.raises(_format.BadArgument, match="expected KEY=VALUE"):
        _format.parse_var(text)


def test_var_entries_override_the_file_in_order() -> None:
    merged = _format.merge_variables({"a": 1, "b": 2}, ["b=3", "c=x", "c=4"])
    assert merged == {"a": 1, "b": 3, "c": 4}


@pytest.mark.parametrize(
    ("text", "message"),
    [("[1]", "must hold a JSON object, got list"), ("{", "not valid JSON")],
)
def test_a_vars_file_must_be_a_json_object(text: str, message: str) -> None:
    with pytest.raises(_format.BadArgument, match=message):
        _format.parse_vars_document(text, "vars.json")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("handlers:registry", ("handlers", "registry")),
        ("shop.workers:jobs", ("shop.workers", "jobs")),
        ("handlers", ("handlers", "registry")),
        ("examples/order_fulfilment.py:registry", ("examples/order_fulfilment.py", "registry")),
        ("C:/src/handlers.py:registry", ("C:/src/handlers.py", "registry")),
    ],
)
def test_registry_spec(spec: str, expected: tuple[str, str]) -> None:
    assert _format.parse_registry_spec(spec) == expected


@pytest.mark.parametrize("spec", [":registry", "handlers:", "handlers:not-a-name"])
def test_bad_registry_spec(spec: str) -> None:
    with pytest.raises(_format.BadArgument, match="expected MODULE:REGISTRY"):
        _format.parse_registry_spec(spec)


# --- text helpers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00.25Z", "250ms"),
        ("2026-01-01T00:00:00Z", "2026-01-01T00:00:02.4Z", "2.4s"),
        ("2026-01-01T00:00:00Z", "2026-01-01T00:03:05Z", "3m05s"),
        ("2026-01-01T00:00:00Z", "2026-01-01T02:07:00Z", "2h07m"),
        ("2026-01-01T00:00:00Z", None, "-"),
        ("not a time", "2026-01-01T00:00:00Z", "-"),
    ],
)
def test_duration(start: Any, end: Any, expected: str) -> None:
    assert _format.duration(start, end) == expected


def test_times_are_shown_in_utc() -> None:
    assert _format.short_time("2026-01-31T13:04:05.123+01:00") == "2026-01-31 12:04:05"
    assert _format.clock_time("2026-01-31T12:04:05.123456Z") == "12:04:05.123"
    assert _format.short_time(None) == "-"


def test_one_line_joins_a_multi_line_reason() -> None:
    assert _format.one_line("validation error: \n  a\n\n  b\n") == "validation error:; a; b"


# --- following an instance -----------------------------------------------------------------


def _item(step: str, status: str, attempt: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"{step}-{attempt}",
        "stepId": step,
        "stepType": "SERVICE_TASK",
        "attemptNumber": attempt,
        "status": status,
        "startedAt": "2026-01-01T10:00:00Z",
        "endedAt": None,
        "failureReason": None,
        **extra,
    }


def test_step_tracker_reports_new_and_changed_executions_once() -> None:
    tracker = _format.StepTracker()
    first = [_item("a", "RUNNING")]
    assert tracker.update(first) == first
    assert tracker.update(first) == []
    second = [_item("a", "COMPLETED"), _item("b", "RUNNING"), _item("b", "RUNNING", 2)]
    assert [(i["stepId"], i["attemptNumber"]) for i in tracker.update(second)] == [
        ("a", 1),
        ("b", 1),
        ("b", 2),
    ]
    assert tracker.update(second) == []


def test_step_line() -> None:
    running = _item("reserve-stock", "RUNNING")
    assert _format.step_line(running) == (
        "10:00:00.000  reserve-stock        SERVICE_TASK     RUNNING"
    )
    failed = _item(
        "charge",
        "FAILED",
        attempt=3,
        endedAt="2026-01-01T10:00:01.5Z",
        failureReason="card declined\nby the bank",
    )
    assert _format.step_line(failed) == (
        "10:00:01.500  charge               SERVICE_TASK     FAILED  attempt 3  (1.5s)"
        "  card declined; by the bank"
    )


def test_instance_line() -> None:
    base = {"id": "I1", "startedAt": "2026-01-01T10:00:00Z"}
    done = {**base, "status": "COMPLETED", "completedAt": "2026-01-01T10:00:00.054Z"}
    assert _format.instance_line(done) == "instance I1 COMPLETED in 54ms"
    waiting = {**base, "status": "WAITING", "currentStepIds": ["review", "pay"]}
    assert _format.instance_line(waiting) == "instance I1 WAITING at review, pay"
    failed = {
        **base,
        "status": "FAILED",
        "completedAt": "2026-01-01T10:00:02Z",
        "failureReason": "x",
    }
    assert _format.instance_line(failed) == "instance I1 FAILED in 2.0s: x"


# --- tables --------------------------------------------------------------------------------


def test_instances_table_is_aligned() -> None:
    items = [
        {
            "id": "01AAA",
            "definitionId": "SHOP::order",
            "definitionVersion": 2,
            "status": "WAITING",
            "businessKey": "o-1",
            "startedAt": "2026-01-01T10:00:00Z",
            "currentStepIds": ["review"],
        },
        {
            "id": "01BBBBBBB",
            "definitionId": "x",
            "definitionVersion": 1,
            "status": "COMPLETED",
            "startedAt": "2026-01-01T11:00:00Z",
            "currentStepIds": [],
        },
    ]
    lines = _render(_format.instances_table(items)).splitlines()
    assert lines[0].split() == [
        "ID", "DEFINITION", "STATUS", "BUSINESS", "KEY", "STARTED", "CURRENT", "STEPS",
    ]  # fmt: skip
    assert lines[1].split() == [
        "01AAA", "SHOP::order", "v2", "WAITING", "o-1", "2026-01-01", "10:00:00", "review",
    ]  # fmt: skip
    assert lines[2].split() == [
        "01BBBBBBB", "x", "v1", "COMPLETED", "-", "2026-01-01", "11:00:00", "-",
    ]  # fmt: skip
    # every column starts at the same offset on every line
    for column in ("STATUS", "STARTED"):
        offset = lines[0].index(column)
        assert all(line[offset - 1] == " " and line[offset] != " " for line in lines)


def test_definition_view_lists_the_steps_and_where_they_lead() -> None:
    text = _render(
        _format.definition_view(
            {
                "id": "SHOP::x",
                "name": "X",
                "steps": [
                    {"id": "a", "type": "SERVICE_TASK", "jobType": "do-a", "nextStep": "d"},
                    {"id": "d", "type": "DECISION", "conditionalNextSteps": {"ok": "e"}},
                    {"id": "e", "type": "END"},
                ],
            }
        )
    )
    assert re.search(r"^Definition\s+SHOP::x$", text, re.M)
    assert re.search(r"^a\s+SERVICE_TASK\s+do-a\s+d$", text, re.M)
    assert re.search(r"^d\s+DECISION\s+-\s+e if ok$", text, re.M)


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (
            TransportError("get_instance: ClientConnectorError: refused", operation="get"),
            ExitCode.UNREACHABLE,
            "cannot reach the engine at http://e:1 (ClientConnectorError: refused)",
        ),
        (
            NotFound('instance "I9" not found', status=404),
            ExitCode.NOT_FOUND,
            'instance "I9" not found',
        ),
        (
            NotFound("user task not found", status=404),
            ExitCode.NOT_FOUND,
            "instance I9: user task not found",
        ),
        (
            Conflict("instance is in a terminal state", status=409),
            ExitCode.CONFLICT,
            "instance I9: instance is in a terminal state",
        ),
        (ApiError("bad\n  thing", status=400), ExitCode.INVALID, "instance I9: bad; thing"),
        (ApiError("denied", status=401), ExitCode.INVALID, "check --token"),
        (ApiError("boom", status=500), ExitCode.ENGINE_ERROR, "the engine answered 500"),
        (ApiError("", status=502), ExitCode.ENGINE_ERROR, "HTTP 502"),
    ],
)
def test_api_failures_map_to_exit_codes(error: Exception, code: ExitCode, line: str) -> None:
    assert isinstance(error, TransportError | ApiError)
    failure = _common.api_failure(error, "http://e:1", "instance I9")
    assert failure.exit_code == code
    assert line in failure.message
    assert "\n" not in failure.message


def test_cli_error_prints_one_error_line_per_message(capsys: pytest.CaptureFixture[str]) -> None:
    CliError("first\n  detail", "second", code=ExitCode.INVALID).show()
    assert capsys.readouterr().err == "error: first; detail\nerror: second\n"


# --- the commands' help --------------------------------------------------------------------


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        if isinstance(command, click.Group):
            found += _commands(command, path)
        else:
            found.append(path)
    return found


def test_every_command_has_help_with_an_example() -> None:
    commands = _commands(cli)
    assert {" ".join(c) for c in commands} == {
        "deploy", "definitions list", "definitions show", "start", "instances list",
        "instances show", "instances watch", "user-task complete", "signal", "cancel", "worker",
    }  # fmt: skip
    for path in commands:
        result = CliRunner().invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, result.output
        assert "Example:" in result.output, path
        assert f"rochallor {' '.join(path)}" in result.output, path


def test_global_options_may_follow_the_command() -> None:
    seen: dict[str, Any] = {}

    @cli.command("probe-options", hidden=True)
    @_common.common_options
    def probe() -> None:
        opts = _common.options()
        seen.update(engine=opts.engine, token=opts.token, output=opts.output)

    try:
        result = CliRunner().invoke(
            cli,
            ["--engine", "http://a:1", "-o", "json", "probe-options", "--engine", "http://b:2"],
            env={"ROCHALLOR_TOKEN": "t0k"},
        )
    finally:
        cli.commands.pop("probe-options")
    assert result.exit_code == 0, result.output
    assert seen == {"engine": "http://b:2", "token": "t0k", "output": "json"}


def test_a_bad_var_is_a_usage_error_before_any_request() -> None:
    result = CliRunner().invoke(
        cli, ["--engine", "http://127.0.0.1:9", "start", "X", "--var", "oops"]
    )
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr == "error: --var 'oops': expected KEY=VALUE, e.g. --var quantity=3\n"


# --- loading a registry --------------------------------------------------------------------


@pytest.fixture
def module_dir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A folder of handler modules as the current directory; sys.path/modules restored."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_load_registry_from_a_module_or_a_file(module_dir: Any) -> None:
    (module_dir / "cli_handlers_ok.py").write_text(
        "from rochallor_sdk import Registry\n"
        "jobs = Registry()\n"
        "jobs.register('a', lambda ctx: None)\n"
    )
    by_module = _worker_command.load_registry("cli_handlers_ok:jobs")
    assert isinstance(by_module, Registry)
    assert by_module.job_types == ["a"]
    by_file = _worker_command.load_registry(str(module_dir / "cli_handlers_ok.py") + ":jobs")
    assert by_file.job_types == ["a"]


@pytest.mark.parametrize(
    ("source", "spec", "message"),
    [
        (None, "cli_no_such_module:registry", "no module named 'cli_no_such_module'"),
        ("x = 1\n", "cli_h1:registry", "cli_h1 has no attribute 'registry'"),
        ("registry = 42\n", "cli_h2:registry", "cli_h2:registry is a int, not a"),
        ("import cli_nowhere\n", "cli_h3", "importing cli_h3 failed: ModuleNotFoundError"),
        ("1 / 0\n", "cli_h4.py:registry", "ZeroDivisionError: division by zero at "),
        (None, "cli_missing.py:registry", "cli_missing.py: no such file"),
        (None, "cli_h5:not-a-name", "expected MODULE:REGISTRY"),
    ],
)
def test_load_registry_errors_say_what_is_wrong(
    module_dir: Any, source: str | None, spec: str, message: str
) -> None:
    if source is not None:
        name = spec.split(":")[0].removesuffix(".py")
        (module_dir / f"{name}.py").write_text(source)
    with pytest.raises(CliError) as caught:
        _worker_command.load_registry(spec)
    assert caught.value.exit_code == ExitCode.USAGE
    assert message in caught.value.message


def test_dry_run_needs_the_validator(tmp_path: Any) -> None:
    path = tmp_path / "flow.json"
    path.write_text("{}")
    result = CliRunner().invoke(cli, ["deploy", "--dry-run", "--no-validate", str(path)])
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("error: --dry-run needs the validator: pip install")
