"""Drives the pure core through sequences of events, keeping the state the store would keep."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from rochallor_server.engine import commands as cmd
from rochallor_server.engine import instance as core
from rochallor_server.engine.definitions import CompiledDefinition, compile_definition
from rochallor_server.engine.model import (
    DefinitionRecord,
    ExecutionStatus,
    Instance,
    Job,
    JobStatus,
    StepExecution,
    Timer,
    TimerStatus,
    UserTask,
    UserTaskStatus,
)
from rochallor_server.testing import FixedClock, SequentialIds


def compiled(document: dict[str, Any], version: int = 1) -> CompiledDefinition:
    record = DefinitionRecord(
        id=document["id"],
        version=version,
        name=document["name"],
        uploaded_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        document=document,
    )
    return compile_definition(record)


class Harness:
    def __init__(self, document: dict[str, Any]) -> None:
        self.definition = compiled(document)
        self.clock = FixedClock()
        self.ids = SequentialIds()
        self.instance: Instance | None = None
        self.executions: dict[str, StepExecution] = {}
        self.jobs: dict[str, Job] = {}
        self.tasks: dict[str, UserTask] = {}
        self.timers: dict[str, Timer] = {}
        self.log: list[cmd.Command] = []

    # -- state as the store would hold it --------------------------------------------------

    @property
    def state(self) -> core.InstanceState:
        assert self.instance is not None
        running = tuple(e for e in self.executions.values() if e.status is ExecutionStatus.RUNNING)
        return core.InstanceState(instance=self.instance, running=running)

    def apply(self, outcome: core.Outcome | None) -> core.Outcome | None:
        if outcome is None:
            return None
        self.log.extend(outcome.commands)
        for c in outcome.commands:
            self._apply(c)
        return outcome

    def _apply(self, c: cmd.Command) -> None:
        match c:
            case cmd.InsertInstance(instance=i) | cmd.SaveInstance(instance=i):
                self.instance = i
            case cmd.InsertExecution(execution=e):
                self.executions[e.id] = e
            case cmd.FinishExecution():
                e = self.executions[c.execution_id]
                self.executions[e.id] = attrs.evolve(
                    e, status=c.status, ended_at=c.ended_at, failure_reason=c.failure_reason
                )
            case cmd.InsertJob(job=j):
                self.jobs[j.id] = j
            case cmd.CompleteJob():
                self.jobs[c.job_id] = attrs.evolve(
                    self.jobs[c.job_id], status=JobStatus.COMPLETED, worker_id=c.worker_id
                )
            case cmd.FailJob():
                self.jobs[c.job_id] = attrs.evolve(self.jobs[c.job_id], status=JobStatus.FAILED)
            case cmd.RetryJob(job=j):
                self.jobs[j.id] = attrs.evolve(
                    j,
                    status=JobStatus.UNLOCKED,
                    retries_remaining=c.retries_remaining,
                    worker_id=None,
                    locked_at=None,
                    lock_expires_at=None,
                )
            case cmd.InsertUserTask(task=t):
                self.tasks[t.id] = t
            case cmd.CompleteUserTask():
                self.tasks[c.task_id] = attrs.evolve(
                    self.tasks[c.task_id], status=UserTaskStatus.COMPLETED
                )
            case cmd.InsertTimer(timer=t):
                self.timers[t.id] = t
            case cmd.MarkTimerFired():
                self.timers[c.timer_id] = attrs.evolve(
                    self.timers[c.timer_id], status=TimerStatus.FIRED
                )
            case cmd.CancelOpenWork():
                self._cancel(c)
            case cmd.Audit() | cmd.ChainNext():
                pass

    def _cancel(self, c: cmd.CancelOpenWork) -> None:
        def scoped(execution_id: str) -> bool:
            return c.execution_ids is None or execution_id in c.execution_ids

        for t in list(self.timers.values()):
            if t.status is TimerStatus.PENDING and scoped(t.step_execution_id):
                self.timers[t.id] = attrs.evolve(t, status=TimerStatus.CANCELLED)
        if c.timers_only:
            return
        for j in list(self.jobs.values()):
            if j.status.open and scoped(j.step_execution_id):
                self.jobs[j.id] = attrs.evolve(j, status=JobStatus.CANCELLED)
        for u in list(self.tasks.values()):
            if u.status is UserTaskStatus.OPEN and scoped(u.step_execution_id):
                self.tasks[u.id] = attrs.evolve(u, status=UserTaskStatus.CANCELLED)

    # -- events -----------------------------------------------------------------------------

    def start(self, variables: dict[str, Any] | None = None, business_key: str | None = None):
        return self.apply(
            core.start(
                self.definition,
                instance_id="inst-1",
                variables=variables or {},
                business_key=business_key,
                now=self.clock.now(),
                ids=self.ids,
            )
        )

    def open_job(self, step_id: str) -> Job:
        jobs = [j for j in self.jobs.values() if j.step_id == step_id and j.status.open]
        assert len(jobs) == 1, f"expected one open job for {step_id}, got {jobs}"
        return jobs[0]

    def complete(self, step_id: str, variables: dict[str, Any] | None = None, job=None):
        job = job or self.open_job(step_id)
        return self.apply(
            core.complete_job(
                self.definition,
                self.state,
                job,
                worker_id="w1",
                variables=variables,
                now=self.clock.now(),
                ids=self.ids,
            )
        )

    def fail(self, step_id: str, message: str | None, *, retryable: bool, worker="w1", job=None):
        job = job or self.open_job(step_id)
        return self.apply(
            core.fail_job(
                self.definition,
                self.state,
                job,
                worker_id=worker,
                error_message=message,
                retryable=retryable,
                now=self.clock.now(),
                ids=self.ids,
            )
        )

    def complete_task(self, step_id: str, variables: dict[str, Any] | None = None):
        open_tasks = [
            t
            for t in self.tasks.values()
            if t.step_id == step_id and t.status is UserTaskStatus.OPEN
        ]
        return self.apply(
            core.complete_user_task(
                self.definition,
                self.state,
                step_id,
                open_tasks[0] if open_tasks else None,
                variables=variables,
                completed_by="alice",
                now=self.clock.now(),
                ids=self.ids,
            )
        )

    def signal(self, step_id: str, variables: dict[str, Any] | None = None):
        return self.apply(
            core.signal(
                self.definition,
                self.state,
                step_id,
                variables=variables,
                now=self.clock.now(),
                ids=self.ids,
            )
        )

    def fire_due_timers(self):
        due = [
            t
            for t in self.timers.values()
            if t.status is TimerStatus.PENDING and t.fire_at <= self.clock.now()
        ]
        for t in sorted(due, key=lambda t: t.fire_at):
            self.apply(
                core.fire_timer(self.definition, self.state, t, now=self.clock.now(), ids=self.ids)
            )
        return due

    def cancel(self, reason: str):
        return self.apply(
            core.cancel(
                self.definition, self.state, reason=reason, now=self.clock.now(), ids=self.ids
            )
        )

    def retry(self, variables: dict[str, Any] | None = None):
        history = sorted(self.executions.values(), key=lambda e: (e.started_at, e.id))
        return self.apply(
            core.retry(
                self.definition,
                self.state,
                history,
                variables=variables,
                now=self.clock.now(),
                ids=self.ids,
            )
        )

    # -- views ----------------------------------------------------------------------------

    def history(self) -> list[tuple[str, str]]:
        ordered = sorted(self.executions.values(), key=lambda e: (e.started_at, e.id))
        return [(e.step_id, e.status.value) for e in ordered]

    def commands_of(self, kind: type) -> list[Any]:
        return [c for c in self.log if isinstance(c, kind)]
