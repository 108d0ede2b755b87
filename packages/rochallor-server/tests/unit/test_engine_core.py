"""The pure state machine, event by event (no database, no event loop)."""

from __future__ import annotations

import typing
from typing import Any

import pytest

import rochallor_validator as rv
from rochallor_server.engine import commands as cmd
from rochallor_server.engine.model import (
    ExecutionStatus,
    InstanceStatus,
    JobStatus,
    TimerStatus,
    UserTaskStatus,
)
from rochallor_server.errors import BadRequest, Conflict, NotFound

from .engine_harness import Harness


def wf(*steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"id": "T::wf", "name": "Workflow", "steps": list(steps), **top}


def task(id: str, next: str | None = None, **extra: Any) -> dict[str, Any]:
    step = {"id": id, "name": id, "type": "SERVICE_TASK", "jobType": id, **extra}
    if next:
        step["nextStep"] = next
    return step


def end(id: str = "end") -> dict[str, Any]:
    return {"id": id, "name": id, "type": "END"}


def test_linear_workflow_runs_to_completed() -> None:
    h = Harness(wf(task("a", "b"), task("b", "end"), end()))
    h.start({"amount": 100})
    assert h.instance.status is InstanceStatus.ACTIVE
    assert h.instance.current_step_ids == ("a",)
    job = h.open_job("a")
    assert job.payload == {"amount": 100}
    assert job.retries_remaining == 0
    h.complete("a", {"x": 1})
    assert h.instance.current_step_ids == ("b",)
    h.complete("b", {"y": 2})
    assert h.instance.status is InstanceStatus.COMPLETED
    assert h.instance.current_step_ids == ()
    assert h.instance.completed_at is not None
    assert h.instance.variables == {"amount": 100, "x": 1, "y": 2}
    assert h.history() == [("a", "COMPLETED"), ("b", "COMPLETED"), ("end", "COMPLETED")]


def test_job_type_defaults_and_retry_budget() -> None:
    h = Harness(wf(task("a", "end", retryCount=3), end()))
    h.start()
    assert h.open_job("a").retries_remaining == 3


def test_second_completion_is_a_no_op() -> None:
    h = Harness(wf(task("a", "end"), end()))
    h.start()
    job = h.open_job("a")
    assert h.complete("a", {"v": 1}, job=job) is not None
    finished = h.jobs[job.id]
    assert finished.status is JobStatus.COMPLETED
    assert h.complete("a", {"v": 2}, job=finished) is None
    assert h.instance.variables == {"v": 1}


def test_shallow_merge_replaces_whole_values_and_keeps_null() -> None:
    h = Harness(wf(task("a", "end"), end()))
    h.start({"a": {"x": 1}, "keep": True})
    h.complete("a", {"a": {"y": 2}, "n": None})
    assert h.instance.variables == {"a": {"y": 2}, "keep": True, "n": None}


DECISION = wf(
    task("score", "route"),
    {
        "id": "route",
        "name": "Route",
        "type": "DECISION",
        "conditionalNextSteps": {"risk > 5": "rejected", "risk > 1": "approved"},
    },
    end("approved"),
    end("rejected"),
)


def test_decision_takes_the_first_true_branch_in_written_order() -> None:
    h = Harness(DECISION)
    h.start()
    h.complete("score", {"risk": 9})  # both conditions are true
    assert h.instance.status is InstanceStatus.COMPLETED
    assert ("rejected", "COMPLETED") in h.history()
    assert all(step != "approved" for step, _ in h.history())


def test_decision_without_match_fails_the_instance() -> None:
    h = Harness(DECISION)
    h.start()
    h.complete("score", {"risk": 0})
    assert h.instance.status is InstanceStatus.FAILED
    assert "DecisionNoBranchMatched" in h.instance.failure_reason
    route = next(e for e in h.executions.values() if e.step_id == "route")
    assert route.status is ExecutionStatus.FAILED
    assert route.failure_reason == h.instance.failure_reason


def test_decision_on_an_undefined_variable_fails_with_eval_error() -> None:
    h = Harness(DECISION)
    h.start()
    h.complete("score", {})
    assert h.instance.status is InstanceStatus.FAILED
    assert h.instance.failure_reason.startswith("expression eval error: ")


def test_transformation_assigns_in_order_and_completes() -> None:
    h = Harness(
        wf(
            {
                "id": "calc",
                "name": "Calc",
                "type": "TRANSFORMATION",
                "nextStep": "end",
                "transformations": {"double": "${amount * 2}", "quad": "${double * 2}", "lit": 7},
            },
            end(),
        )
    )
    h.start({"amount": 5})
    assert h.instance.status is InstanceStatus.COMPLETED
    assert h.instance.variables == {"amount": 5, "double": 10, "quad": 20, "lit": 7}


def test_transformation_error_fails_and_assigns_nothing() -> None:
    h = Harness(
        wf(
            {
                "id": "calc",
                "name": "Calc",
                "type": "TRANSFORMATION",
                "nextStep": "end",
                "transformations": {"ok": 1, "bad": "${missing + 1}"},
            },
            end(),
        )
    )
    h.start({"amount": 5})
    assert h.instance.status is InstanceStatus.FAILED
    assert h.instance.failure_reason.startswith('transformation "bad"')
    assert h.instance.variables == {"amount": 5}


PARALLEL = wf(
    {
        "id": "fork",
        "name": "Fork",
        "type": "PARALLEL_GATEWAY",
        "parallelNextSteps": ["a1", "b1"],
        "joinStep": "join",
    },
    task("a1", "a2"),
    task("a2", "join"),
    task("b1", "join"),
    {"id": "join", "name": "Join", "type": "JOIN_GATEWAY", "nextStep": "after"},
    task("after", "end"),
    end(),
)


def test_join_waits_for_every_branch_even_multi_step_ones() -> None:
    h = Harness(PARALLEL)
    h.start()
    assert set(h.instance.current_step_ids) == {"a1", "b1"}
    h.complete("a1")
    h.complete("b1")  # branch B arrives; branch A is still at a2
    assert "join" in h.instance.current_step_ids
    assert "after" not in h.instance.current_step_ids
    assert not [j for j in h.jobs.values() if j.step_id == "after"]
    assert h.instance.status is InstanceStatus.ACTIVE
    h.complete("a2")
    assert h.instance.current_step_ids == ("after",)
    joins = [e for e in h.executions.values() if e.step_id == "join"]
    assert [e.status for e in joins] == [ExecutionStatus.COMPLETED]
    assert h.instance.join_arrivals == {}
    h.complete("after")
    assert h.instance.status is InstanceStatus.COMPLETED


def test_parallel_user_task_is_waiting_while_a_job_runs() -> None:
    h = Harness(
        wf(
            {
                "id": "fork",
                "name": "Fork",
                "type": "PARALLEL_GATEWAY",
                "parallelNextSteps": ["svc", "approve"],
                "joinStep": "join",
            },
            task("svc", "join"),
            {"id": "approve", "name": "Approve", "type": "USER_TASK", "nextStep": "join"},
            {"id": "join", "name": "Join", "type": "JOIN_GATEWAY", "nextStep": "end"},
            end(),
        )
    )
    h.start()
    assert h.instance.status is InstanceStatus.WAITING
    assert "approve" in h.instance.current_step_ids
    h.complete("svc")
    assert h.instance.status is InstanceStatus.WAITING
    h.complete_task("approve", {"approved": True})
    assert h.instance.status is InstanceStatus.COMPLETED
    assert h.instance.variables == {"approved": True}


USER_TASK = wf(
    {"id": "review", "name": "Review", "type": "USER_TASK", "nextStep": "end"},
    task("other", "end"),
    end(),
)


def test_user_task_parks_then_completes() -> None:
    h = Harness(
        wf({"id": "review", "name": "Review", "type": "USER_TASK", "nextStep": "end"}, end())
    )
    h.start({"a": 1})
    assert h.instance.status is InstanceStatus.WAITING
    [task_row] = h.tasks.values()
    assert task_row.payload == {"a": 1}
    h.complete_task("review", {"ok": True})
    assert h.instance.status is InstanceStatus.COMPLETED
    assert h.tasks[task_row.id].status is UserTaskStatus.COMPLETED


def test_user_task_checks_in_order() -> None:
    h = Harness(
        wf(
            {"id": "review", "name": "Review", "type": "USER_TASK", "nextStep": "t"},
            task("t", "end"),
            end(),
        )
    )
    h.start()
    with pytest.raises(NotFound):
        h.complete_task("nope")
    with pytest.raises(BadRequest):
        h.complete_task("t")
    h.complete_task("review")
    with pytest.raises(NotFound):  # already completed, instance still running
        h.complete_task("review")
    h.complete("t")
    with pytest.raises(Conflict):  # terminal instance
        h.complete_task("review")


WAIT = wf(
    {"id": "wait", "name": "Wait", "type": "WAIT", "nextStep": "t"},
    task("t", "end"),
    end(),
)


def test_signal_resumes_a_parked_wait() -> None:
    h = Harness(WAIT)
    h.start()
    assert h.instance.status is InstanceStatus.WAITING
    h.signal("wait", {"s": 1})
    assert h.instance.status is InstanceStatus.ACTIVE
    assert h.instance.variables == {"s": 1}
    with pytest.raises(Conflict):  # no longer parked
        h.signal("wait")


def test_signal_errors() -> None:
    h = Harness(WAIT)
    h.start()
    with pytest.raises(Conflict):
        h.signal("unknown-step")
    with pytest.raises(BadRequest):
        h.signal("t")


def test_path_end_without_end_step_completes_when_nothing_else_runs() -> None:
    # END is reachable only through the timer; the normal path ends after "only".
    timer = {"type": "TIMER", "duration": "PT1H", "interrupting": True, "targetStepId": "end"}
    h = Harness(wf(task("only", boundaryEvents=[timer]), end()))
    h.start()
    h.complete("only")
    assert h.instance.status is InstanceStatus.COMPLETED
    assert h.instance.current_step_ids == ()


def test_end_completes_and_cleans_up_other_paths_and_chains() -> None:
    h = Harness(
        wf(
            {
                "id": "wait",
                "name": "Wait",
                "type": "WAIT",
                "nextStep": "end",
                "boundaryEvents": [
                    {
                        "type": "TIMER",
                        "duration": "PT2S",
                        "interrupting": False,
                        "targetStepId": "t",
                    }
                ],
            },
            task("t", "end"),
            end(),
            autoStartNextWorkflow=True,
            nextWorkflowId="T::next",
        ),
    )
    h.start({"k": "v"}, business_key="BK-1")
    h.clock.advance(3)
    h.fire_due_timers()
    assert set(h.instance.current_step_ids) == {"wait", "t"}
    assert h.instance.status is InstanceStatus.WAITING
    h.complete("t")
    assert h.instance.status is InstanceStatus.COMPLETED
    assert h.instance.current_step_ids == ()
    wait = next(e for e in h.executions.values() if e.step_id == "wait")
    assert wait.status is ExecutionStatus.SKIPPED
    assert wait.failure_reason == "instance completed at end"
    [chain] = h.commands_of(cmd.ChainNext)
    assert chain.definition_id == "T::next"
    assert chain.variables == {"k": "v"}
    assert chain.business_key == "BK-1"


TIMEOUT = wf(
    task(
        "slow",
        "end",
        boundaryEvents=[
            {"type": "TIMER", "duration": "PT2S", "interrupting": True, "targetStepId": "handler"}
        ],
    ),
    task("handler", "end"),
    end(),
)


def test_interrupting_timer_diverts_and_late_completion_changes_nothing() -> None:
    h = Harness(TIMEOUT)
    h.start()
    slow_job = h.open_job("slow")
    [timer] = h.timers.values()
    assert (timer.fire_at - h.clock.now()).total_seconds() == 2
    h.clock.advance(1)
    assert h.fire_due_timers() == []
    h.clock.advance(2)
    h.fire_due_timers()
    assert h.jobs[slow_job.id].status is JobStatus.CANCELLED
    assert h.instance.current_step_ids == ("handler",)
    slow = next(e for e in h.executions.values() if e.step_id == "slow")
    assert slow.status is ExecutionStatus.FAILED
    assert slow.failure_reason == "interrupted by boundary timer"
    assert h.complete("slow", {"late": True}, job=h.jobs[slow_job.id]) is None
    h.complete("handler")
    assert h.instance.status is InstanceStatus.COMPLETED
    assert "late" not in h.instance.variables


def test_timer_never_fires_after_its_step_finished() -> None:
    h = Harness(TIMEOUT)
    h.start()
    h.complete("slow")
    [timer] = h.timers.values()
    assert timer.status is TimerStatus.CANCELLED
    assert h.instance.status is InstanceStatus.COMPLETED


def test_days_and_months_in_durations() -> None:
    h = Harness(
        wf(
            task(
                "a",
                "end",
                boundaryEvents=[
                    {"type": "TIMER", "duration": "P1DT2H", "targetStepId": "end"},
                    {"type": "TIMER", "duration": "P1M", "targetStepId": "end"},
                ],
            ),
            end(),
        )
    )
    h.start()
    fire = sorted(t.fire_at for t in h.timers.values())
    assert (fire[0] - h.clock.now()).total_seconds() == 26 * 3600
    assert fire[1].month == 2


def test_retryable_failure_requeues_until_budget_is_spent() -> None:
    h = Harness(wf(task("a", "end", retryCount=1), end()))
    h.start()
    h.fail("a", "boom", retryable=True)
    job = h.open_job("a")
    assert job.status is JobStatus.UNLOCKED
    assert job.retries_remaining == 0
    assert h.instance.status is InstanceStatus.ACTIVE
    h.fail("a", "always fails", retryable=True)
    assert h.instance.status is InstanceStatus.FAILED
    assert h.instance.failure_reason == "always fails"
    assert [e.status for e in h.executions.values()] == [ExecutionStatus.FAILED]


def test_non_retryable_failure_and_blank_message() -> None:
    h = Harness(wf(task("a", "end", retryCount=5), end()))
    h.start()
    h.fail("a", "  ", retryable=False)
    assert h.instance.status is InstanceStatus.FAILED
    assert h.instance.failure_reason == "job a failed"


def test_stale_failure_from_another_worker_is_ignored() -> None:
    import attrs

    h = Harness(wf(task("a", "end", retryCount=2), end()))
    h.start()
    job = attrs.evolve(h.open_job("a"), status=JobStatus.LOCKED, worker_id="w2")
    h.fail("a", "stale", retryable=True, worker="w1", job=job)
    assert not h.commands_of(cmd.RetryJob)
    assert h.instance.status is InstanceStatus.ACTIVE


def test_terminal_failure_cancels_sibling_work() -> None:
    h = Harness(PARALLEL)
    h.start()
    b1 = h.open_job("b1")
    h.fail("a1", "nope", retryable=False)
    assert h.instance.status is InstanceStatus.FAILED
    assert h.jobs[b1.id].status is JobStatus.CANCELLED
    statuses = {e.step_id: e.status for e in h.executions.values()}
    assert statuses["a1"] is ExecutionStatus.FAILED
    assert statuses["b1"] is ExecutionStatus.SKIPPED
    assert set(h.instance.current_step_ids) == {"a1", "b1"}


def test_cancel_cancels_everything_once() -> None:
    h = Harness(WAIT)
    h.start()
    h.cancel("e2e-test-cancel")
    assert h.instance.status is InstanceStatus.CANCELLED
    assert h.instance.failure_reason == "e2e-test-cancel"
    assert h.instance.current_step_ids == ("wait",)
    assert [e.status for e in h.executions.values()] == [ExecutionStatus.SKIPPED]
    with pytest.raises(Conflict):
        h.cancel("again")


def test_synchronous_loop_is_stopped() -> None:
    h = Harness(
        wf(
            {
                "id": "inc",
                "name": "Inc",
                "type": "TRANSFORMATION",
                "nextStep": "check",
                "transformations": {"n": "${n + 1}"},
            },
            {
                "id": "check",
                "name": "Check",
                "type": "DECISION",
                "conditionalNextSteps": {"n < 0": "end", "n >= 0": "inc"},
            },
            end(),
        )
    )
    h.start({"n": 0})
    assert h.instance.status is InstanceStatus.FAILED
    assert h.instance.failure_reason == "synchronous step limit exceeded"


def test_attempt_numbers_count_re_entries() -> None:
    h = Harness(
        wf(
            task("a", "check"),
            {
                "id": "check",
                "name": "Check",
                "type": "DECISION",
                "conditionalNextSteps": {"again == true": "a", "again == false": "end"},
            },
            end(),
        )
    )
    h.start()
    h.complete("a", {"again": True})
    h.complete("a", {"again": False})
    attempts = [e.attempt_number for e in h.executions.values() if e.step_id == "a"]
    assert attempts == [1, 2]


def test_inline_routing_on_a_task() -> None:
    h = Harness(
        wf(
            task("a", "end", conditionalNextSteps={"ok == true": "good", "ok == false": "end"}),
            task("good", "end"),
            end(),
        )
    )
    h.start()
    h.complete("a", {"ok": True})
    assert h.instance.current_step_ids == ("good",)


def test_steps_entered_and_left_in_one_event_are_inserted_finished() -> None:
    h = Harness(DECISION)
    h.start()
    outcome = h.complete("score", {"risk": 9})
    assert outcome is not None
    finishes = {c.execution_id for c in outcome.commands if isinstance(c, cmd.FinishExecution)}
    inserts = [c for c in outcome.commands if isinstance(c, cmd.InsertExecution)]
    assert [(c.execution.step_id, c.execution.status) for c in inserts] == [
        ("route", ExecutionStatus.COMPLETED),
        ("rejected", ExecutionStatus.COMPLETED),
    ]
    assert all(c.execution.ended_at is not None for c in inserts)
    assert not finishes & {c.execution.id for c in inserts}
    # the waiting task that completed was inserted by an earlier event: it is updated
    assert len(finishes) == 1


def test_terminal_cleanup_only_when_something_can_still_be_open() -> None:
    linear = Harness(wf(task("a", "end"), end()))
    linear.start()
    outcome = linear.complete("a")
    assert outcome is not None
    assert linear.instance.status is InstanceStatus.COMPLETED
    assert not [c for c in outcome.commands if isinstance(c, cmd.CancelOpenWork)]

    parallel = Harness(PARALLEL)
    parallel.start()
    b1 = parallel.open_job("b1")
    outcome = parallel.fail("a1", "boom", retryable=False)
    assert outcome is not None
    assert [c.execution_ids for c in outcome.commands if isinstance(c, cmd.CancelOpenWork)] == [
        None
    ]
    assert parallel.jobs[b1.id].status is JobStatus.CANCELLED


EVERY_STEP_TYPE = wf(
    task("charge", "tier"),
    {
        "id": "tier",
        "name": "Tier",
        "type": "DECISION_TABLE",
        "hitPolicy": "U",
        "inputs": [{"expression": "amount"}],
        "outputs": [{"name": "tier"}],
        "rules": [
            {"inputEntries": ["> 100"], "outputEntries": ["gold"]},
            {"inputEntries": ["<= 100"], "outputEntries": ["plain"]},
        ],
        "nextStep": "shape",
    },
    {
        "id": "shape",
        "name": "Shape",
        "type": "TRANSFORMATION",
        "transformations": {"doubled": "${amount * 2}"},
        "nextStep": "route",
    },
    {
        "id": "route",
        "name": "Route",
        "type": "DECISION",
        "conditionalNextSteps": {"doubled > 100": "fork", "doubled <= 100": "end"},
    },
    {
        "id": "fork",
        "name": "Fork",
        "type": "PARALLEL_GATEWAY",
        "parallelNextSteps": ["review", "wait"],
        "joinStep": "join",
    },
    {"id": "review", "name": "Review", "type": "USER_TASK", "nextStep": "join"},
    {"id": "wait", "name": "Wait", "type": "WAIT", "nextStep": "join"},
    {"id": "join", "name": "Join", "type": "JOIN_GATEWAY", "nextStep": "end"},
    end(),
)


def test_every_validator_step_class_is_run_by_the_core() -> None:
    """mypy proves the core's dispatch exhaustive over ``rv.Step``; this runs each case."""
    h = Harness(EVERY_STEP_TYPE)
    h.start({"amount": 150})
    h.complete("charge")
    assert h.instance.variables == {"amount": 150, "tier": "gold", "doubled": 300}
    h.complete_task("review", {"ok": True})
    h.signal("wait")
    assert h.instance.status is InstanceStatus.COMPLETED
    run = {type(h.definition.steps[step_id]) for step_id, status in h.history()}
    assert run == set(typing.get_args(rv.Step))
    assert all(status == "COMPLETED" for _, status in h.history())
