"""The ``rochallor`` command against a real engine on PostgreSQL, run as a user runs it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ._cli import (
    EXAMPLES,
    assert_one_error,
    closed_port,
    ok,
    rochallor,
    rochallor_process,
    run_in_terminal,
    worker_command,
)
from ._engine import EngineProcess

ORDER = {"orderId": "o-1001", "quantity": 3, "amountCents": 4999}
ORDER_VARS = ["--var", "orderId=o-1001", "--var", "quantity=3", "--var", "amountCents=4999"]

#: A user task, then a WAIT step, then the end.
APPROVAL = {
    "id": "CLI::approval",
    "name": "Approval",
    "steps": [
        {"id": "review", "name": "Review", "type": "USER_TASK", "nextStep": "await-payment"},
        {"id": "await-payment", "name": "Await payment", "type": "WAIT", "nextStep": "end"},
        {"id": "end", "name": "End", "type": "END"},
    ],
}

#: Fails at once when ``route`` is not 1: no branch of the decision matches.
ROUTER = {
    "id": "CLI::router",
    "name": "Router",
    "steps": [
        {
            "id": "decide",
            "name": "Decide",
            "type": "DECISION",
            "conditionalNextSteps": {"route == 1": "end"},
        },
        {"id": "end", "name": "End", "type": "END"},
    ],
}

ANSI = re.compile(r"\x1b\[")


def _write(tmp_path: Path, name: str, document: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


def _json(stdout: str) -> Any:
    return json.loads(stdout)


@pytest.mark.timeout(120)  # four processes besides the engine: slow on a loaded machine
def test_order_fulfilment_from_deploy_to_completed(engine: EngineProcess, tmp_path: Path) -> None:
    url = engine.rest_url
    deployed = ok(rochallor("deploy", str(EXAMPLES / "order-fulfilment.json"), engine_url=url))
    assert deployed.startswith("deployed SHOP::order-fulfilment version 1 "), deployed

    # Two workers share the job types: the README's command over REST, and one over gRPC.
    with (
        worker_command(
            "examples.order_fulfilment:registry",
            "--job-type", "reserve-stock", "--job-type", "dispatch-order",
            engine_url=url, log=tmp_path / "worker.log",
        ) as worker,
        worker_command(
            "examples/order_fulfilment.py", "--job-type", "charge-payment",
            "--transport", "grpc", "--engine", engine.grpc_target, "--parallelism", "2",
            engine_url=url, log=tmp_path / "grpc-worker.log",
        ) as grpc_worker,
    ):  # fmt: skip
        worker.wait_for("over rest for reserve-stock, dispatch-order (parallelism 16)")
        grpc_worker.wait_for(
            f"polling {engine.grpc_target} over grpc for charge-payment (parallelism 2)"
        )
        # The console script with its output piped: plain progress lines, no control codes.
        result = rochallor_process(
            "start",
            "SHOP::order-fulfilment",
            *ORDER_VARS,
            "--business-key",
            "o-1001",
            "--wait",
            engine_url=url,
        )
        out = ok(result)
        assert not ANSI.search(out), out
        lines = out.splitlines()
        instance_id = lines[0].split()[2]
        assert lines[0] == f"started instance {instance_id} of SHOP::order-fulfilment v1"
        finished = [
            (line.split()[1], line.split()[2])
            for line in lines[1:-1]
            if line.split()[3] == "COMPLETED"
        ]
        assert finished == [
            ("reserve-stock", "SERVICE_TASK"),
            ("charge-payment", "SERVICE_TASK"),
            ("payment-status", "DECISION"),
            ("dispatch-order", "SERVICE_TASK"),
            ("end", "END"),
        ], out
        assert re.fullmatch(rf"instance {instance_id} COMPLETED in \S+", lines[-1]), out

        # In a terminal: the live view redraws in place (cursor up, erase line).
        code, screen = run_in_terminal(
            "start",
            "SHOP::order-fulfilment",
            *ORDER_VARS,
            "--business-key",
            "o-1002",
            "--wait",
            engine_url=url,
        )
        assert code == 0, screen
        assert "\x1b[1A" in screen and "\x1b[2K" in screen, screen
        assert re.search(r"instance \w+ COMPLETED in", screen), screen
        assert "dispatch-order" in screen
    assert "reserve-stock: job" in worker.output()
    assert "charge-payment: job" in grpc_worker.output()
    assert "charge-payment" not in worker.output().split("\n", 1)[1]

    # list: an aligned table, and JSON for scripts
    table = ok(rochallor("instances", "list", "--business-key", "o-1001", engine_url=url))
    header, row = table.splitlines()
    assert header.split()[:3] == ["ID", "DEFINITION", "STATUS"]
    assert row.split()[:5] == [instance_id, "SHOP::order-fulfilment", "v1", "COMPLETED", "o-1001"]
    assert row.index("COMPLETED") == header.index("STATUS")
    listed = _json(ok(rochallor("-o", "json", "instances", "list", engine_url=url)))
    assert listed["total"] == 2
    assert {item["status"] for item in listed["items"]} == {"COMPLETED"}

    # show: status, variables, history
    shown = ok(rochallor("instances", "show", instance_id, engine_url=url))
    assert re.search(r"^Status\s+COMPLETED$", shown, re.MULTILINE), shown
    assert '"trackingNumber": "TRK-o-1001"' in shown
    assert re.search(r"^dispatch-order\s+SERVICE_TASK\s+1\s+COMPLETED", shown, re.MULTILINE)
    detail = _json(
        ok(rochallor("instances", "show", instance_id, "--output", "json", engine_url=url))
    )
    assert detail["variables"] == {
        **ORDER,
        "reservedQuantity": 3,
        "warehouse": "DUB-1",
        "paymentStatus": "CAPTURED",
        "trackingNumber": "TRK-o-1001",
    }
    assert [h["stepId"] for h in detail["history"]][-1] == "end"

    # definitions
    definitions = ok(rochallor("definitions", "list", engine_url=url))
    assert definitions.splitlines()[1].split()[:2] == ["SHOP::order-fulfilment", "1"]
    definition = _json(
        ok(
            rochallor(
                "-o",
                "json",
                "definitions",
                "show",
                "SHOP::order-fulfilment",
                "--version",
                "1",
                engine_url=url,
            )
        )
    )
    assert definition["steps"][0]["id"] == "reserve-stock"
    steps = ok(rochallor("definitions", "show", "SHOP::order-fulfilment", engine_url=url))
    assert re.search(
        r"^charge-payment\s+SERVICE_TASK\s+charge-payment\s+payment-status$", steps, re.M
    )


def test_user_task_signal_cancel_and_a_failed_instance(
    engine: EngineProcess, tmp_path: Path
) -> None:
    url = engine.rest_url
    ok(
        rochallor(
            "deploy",
            _write(tmp_path, "approval.json", APPROVAL),
            _write(tmp_path, "router.json", ROUTER),
            engine_url=url,
        )
    )

    started = _json(ok(rochallor("-o", "json", "start", "CLI::approval", engine_url=url)))
    instance_id = started["id"]
    assert (started["status"], started["currentStepIds"]) == ("WAITING", ["review"])

    # watch gives up after --timeout with exit code 8, saying so on stderr
    watched = rochallor("instances", "watch", instance_id, "--timeout", "0.5", engine_url=url)
    assert_one_error(watched, 8, f"instance {instance_id} is still WAITING after 0.5s")
    assert f"instance {instance_id} WAITING at review" in watched.stdout

    # complete the user task, variables from a file and the command line
    vars_file = _write(tmp_path, "vars.json", {"approved": False, "reviewer": "ann"})
    done = rochallor(
        "user-task",
        "complete",
        instance_id,
        "review",
        "--vars-file",
        vars_file,
        "--var",
        "approved=true",
        engine_url=url,
    )
    assert ok(done) == f"completed user task review of instance {instance_id}\n"

    # signal: a step that is not a WAIT is refused; the WAIT step resumes the instance
    wrong = rochallor("signal", instance_id, "review", engine_url=url)
    assert_one_error(wrong, 3, "step type does not match")
    signalled = rochallor(
        "signal", instance_id, "await-payment", "--var", "paid=true", engine_url=url
    )
    assert ok(signalled) == f"signalled await-payment of instance {instance_id}\n"
    final = _json(ok(rochallor("-o", "json", "instances", "show", instance_id, engine_url=url)))
    assert final["status"] == "COMPLETED"
    assert final["variables"] == {"approved": True, "reviewer": "ann", "paid": True}
    watch_done = rochallor("instances", "watch", instance_id, engine_url=url)
    assert ok(watch_done).splitlines()[-1].startswith(f"instance {instance_id} COMPLETED")

    # cancel, then cancel again (conflict); watching a cancelled instance exits 1
    second = _json(ok(rochallor("-o", "json", "start", "CLI::approval", engine_url=url)))["id"]
    cancelled = rochallor("cancel", second, "--reason", "customer withdrew", engine_url=url)
    assert ok(cancelled) == f"instance {second} CANCELLED\n"
    again = rochallor("cancel", second, engine_url=url)
    assert_one_error(again, 5, second, "terminal")
    watch_cancelled = rochallor("instances", "watch", second, engine_url=url)
    assert watch_cancelled.returncode == 1
    assert watch_cancelled.stdout.splitlines()[-1].endswith(": customer withdrew")
    waiting = _json(
        ok(rochallor("-o", "json", "instances", "list", "--status", "cancelled", engine_url=url))
    )
    assert [item["id"] for item in waiting["items"]] == [second]

    # start --wait exits 1 when the instance FAILS, and says why
    failed = rochallor("start", "CLI::router", "--var", "route=2", "--wait", engine_url=url)
    assert failed.returncode == 1, failed
    assert re.search(r"FAILED in \S+: no conditionalNextSteps branch matched", failed.stdout), (
        failed
    )
    routed = rochallor(
        "-o", "json", "start", "CLI::router", "--var", "route=1", "--wait", engine_url=url
    )
    assert _json(ok(routed))["status"] == "COMPLETED"


def test_bad_input_is_one_line_on_stderr_and_a_non_zero_exit(
    engine: EngineProcess, tmp_path: Path
) -> None:
    url = engine.rest_url
    broken = json.loads(json.dumps(ROUTER))
    broken["steps"][0]["conditionalNextSteps"]["route == 2"] = "nowhere"
    broken_file = _write(tmp_path, "broken.json", broken)
    # checked locally by the validator (installed here): the JSON path of the problem
    local = rochallor("deploy", broken_file, engine_url=url)
    line = assert_one_error(local, 3, "broken.json", "$.steps[0].conditionalNextSteps[1].target")
    assert "REF_RESOLVES" in line
    dry = rochallor("deploy", "--dry-run", str(EXAMPLES / "order-fulfilment.json"), engine_url=url)
    assert ok(dry).endswith("order-fulfilment.json: valid (SHOP::order-fulfilment)\n")
    # checked by the engine only
    remote = rochallor("deploy", "--no-validate", broken_file, engine_url=url)
    assert_one_error(remote, 3, "broken.json", "nowhere", "REF_RESOLVES")
    not_json = tmp_path / "not.json"
    not_json.write_text('{"id": ')
    assert_one_error(rochallor("deploy", str(not_json), engine_url=url), 3, "not valid JSON")
    missing = rochallor("deploy", str(tmp_path / "missing.json"), engine_url=url)
    assert_one_error(missing, 2, "missing.json: cannot read")
    # nothing was stored
    assert _json(ok(rochallor("-o", "json", "definitions", "list", engine_url=url)))["total"] == 0

    unknown = "01JNQ7Z3K5V2M8R4T6W9XBCDEF"
    assert_one_error(rochallor("instances", "show", unknown, engine_url=url), 4, unknown)
    assert_one_error(rochallor("cancel", unknown, engine_url=url), 4, unknown)
    assert_one_error(
        rochallor("user-task", "complete", unknown, "review", engine_url=url), 4, unknown
    )
    assert_one_error(rochallor("start", "NOPE", engine_url=url), 4, "NOPE")
    assert_one_error(
        rochallor("definitions", "show", "NOPE", "--version", "3", engine_url=url), 4, "NOPE"
    )
    assert_one_error(rochallor("start", "X", "--var", "novalue", engine_url=url), 2, "KEY=VALUE")


def test_an_unreachable_engine_is_one_line_and_exit_6() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    for args in (
        ["instances", "list"],
        ["start", "SHOP::order-fulfilment", "--wait"],
        ["deploy", str(EXAMPLES / "order-fulfilment.json")],
    ):
        assert_one_error(rochallor(*args, engine_url=url), 6, f"cannot reach the engine at {url}")
    # the console script itself: one line, no traceback
    result = rochallor_process("cancel", "01JNQ7Z3K5V2M8R4T6W9XBCDEF", engine_url=url)
    assert_one_error(result, 6, f"cannot reach the engine at {url}", "ROCHALLOR_ENGINE_URL")


def test_worker_command_refuses_a_bad_registry_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "handlers.py").write_text("registry = 42\n")
    result = rochallor_process("worker", "handlers:registry", engine_url=None, cwd=tmp_path)
    assert_one_error(result, 2, "handlers:registry is a int, not a rochallor_sdk.Registry")
    unknown_type = rochallor(
        "worker", str(EXAMPLES / "order_fulfilment.py"), "--job-type", "ship", engine_url=None
    )
    assert_one_error(unknown_type, 2, "job type 'ship' is not in")
