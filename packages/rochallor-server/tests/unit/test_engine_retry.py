"""Retrying a FAILED instance from its failed step (the pure core)."""

from __future__ import annotations

import pytest

from rochallor_server.engine import commands as cmd
from rochallor_server.engine.model import ExecutionStatus, InstanceStatus, JobStatus
from rochallor_server.errors import Conflict

from .engine_harness import Harness
from .test_engine_core import PARALLEL, end, task, wf


def _failed_terminally(h: Harness, step_id: str, message: str = "boom") -> None:
    h.clock.advance(1)
    h.fail(step_id, message, retryable=False)
    assert h.instance.status is InstanceStatus.FAILED


def test_a_failed_job_is_created_again_with_its_full_retry_budget() -> None:
    h = Harness(wf(task("a", "b"), task("b", "end", retryCount=2), end()))
    h.start({"order": 1})
    h.complete("a")
    failed_job = h.open_job("b")
    _failed_terminally(h, "b", "card declined")
    assert h.instance.failure_reason == "card declined"

    h.clock.advance(1)
    outcome = h.retry()

    assert outcome is not None
    inst = h.instance
    assert inst.status is InstanceStatus.ACTIVE
    assert inst.failure_reason is None and inst.completed_at is None
    assert inst.current_step_ids == ("b",)
    new_job = h.open_job("b")
    assert new_job.id != failed_job.id
    assert new_job.retries_remaining == 2
    assert new_job.status is JobStatus.UNLOCKED
    assert h.jobs[failed_job.id].status is JobStatus.FAILED
    [entry] = [c.entry for c in h.commands_of(cmd.Audit) if c.entry.kind == "instance-retried"]
    assert entry.detail["stepIds"] == ["b"]
    assert entry.detail["previousFailureReason"] == "card declined"
    attempts = [(e.step_id, e.attempt_number, e.status) for e in h.executions.values()]
    assert ("b", 1, ExecutionStatus.FAILED) in attempts
    assert ("b", 2, ExecutionStatus.RUNNING) in attempts

    h.complete("b")
    assert h.instance.status is InstanceStatus.COMPLETED


def test_patched_variables_reach_the_new_job_and_a_decision_evaluated_again() -> None:
    h = Harness(
        wf(
            task("a", "route"),
            {
                "id": "route",
                "name": "Route",
                "type": "DECISION",
                "conditionalNextSteps": {"amount > 10": "big", "amount <= 10": "end"},
            },
            task("big", "end"),
            end(),
        )
    )
    h.start({"amount": "x"})
    h.clock.advance(1)
    h.complete("a")
    assert h.instance.status is InstanceStatus.FAILED
    assert h.instance.failure_reason.startswith("expression eval error")

    h.clock.advance(1)
    h.retry({"amount": 50})

    assert h.instance.status is InstanceStatus.ACTIVE
    assert h.instance.current_step_ids == ("big",)
    assert h.open_job("big").payload == {"amount": 50}
    assert [s for s, status in h.history() if s == "route"] == ["route", "route"]


def test_a_retry_that_fails_again_leaves_the_instance_failed() -> None:
    h = Harness(
        wf(
            {
                "id": "route",
                "name": "Route",
                "type": "DECISION",
                "conditionalNextSteps": {"ok == true": "end"},
            },
            end(),
        )
    )
    h.start({"ok": False})
    assert h.instance.status is InstanceStatus.FAILED
    h.clock.advance(1)
    h.retry({"note": "still wrong"})
    assert h.instance.status is InstanceStatus.FAILED
    assert h.instance.variables == {"ok": False, "note": "still wrong"}
    h.clock.advance(1)
    h.retry({"ok": True})
    assert h.instance.status is InstanceStatus.COMPLETED


def test_only_failed_instances_can_be_retried() -> None:
    h = Harness(wf(task("a", "end"), end()))
    h.start()
    with pytest.raises(Conflict, match="only a FAILED instance"):
        h.retry()
    h.cancel("stop")
    with pytest.raises(Conflict, match="CANCELLED"):
        h.retry()


def test_the_synchronous_step_limit_has_no_step_to_retry() -> None:
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
    assert h.instance.failure_reason == "synchronous step limit exceeded"
    with pytest.raises(Conflict, match="nothing to retry"):
        h.retry()


def test_branches_stopped_by_the_failure_resume_and_joins_keep_their_arrivals() -> None:
    h = Harness(PARALLEL)
    h.start()
    h.clock.advance(1)
    h.complete("a1")
    h.clock.advance(1)
    _failed_terminally(h, "a2")  # b1 was still running: its job is cancelled
    assert dict(h.history()).get("b1") == "SKIPPED"

    h.clock.advance(1)
    h.retry()
    assert set(h.instance.current_step_ids) == {"a2", "b1"}
    h.complete("b1")
    assert "join" in h.instance.current_step_ids
    h.complete("a2")
    assert h.instance.current_step_ids == ("after",)

    # a branch that had arrived at the join before the failure still counts
    h2 = Harness(PARALLEL)
    h2.start()
    h2.clock.advance(1)
    h2.complete("b1")
    h2.complete("a1")
    _failed_terminally(h2, "a2")
    assert h2.instance.join_arrivals == {"join": 1}
    h2.clock.advance(1)
    h2.retry()
    assert set(h2.instance.current_step_ids) == {"join", "a2"}
    h2.complete("a2")
    assert h2.instance.current_step_ids == ("after",)
    h2.complete("after")
    assert h2.instance.status is InstanceStatus.COMPLETED


def test_a_task_whose_inline_routing_failed_routes_again() -> None:
    h = Harness(
        wf(
            task("check", conditionalNextSteps={"score > 5": "end"}),
            end(),
        )
    )
    h.start()
    h.clock.advance(1)
    h.complete("check", {"score": 1})
    assert h.instance.status is InstanceStatus.FAILED
    assert "DecisionNoBranchMatched" in h.instance.failure_reason

    h.clock.advance(1)
    h.retry({"score": 9})
    assert h.instance.status is InstanceStatus.COMPLETED
    assert [s for s, _ in h.history()].count("check") == 1
