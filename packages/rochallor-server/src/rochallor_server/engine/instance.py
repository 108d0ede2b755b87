"""The instance state machine: ``(state, event, now) -> (new state, commands)``.

Pure: no I/O, no asyncio; time and ids come in as arguments. Each public function applies one
event (``semantics.md``) and returns an :class:`Outcome` whose commands a service persists in
one transaction, or raises a domain error (nothing to persist).
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, assert_never

import attrs

import rochallor_validator as rv
from rochallor_server.engine import commands as cmd
from rochallor_server.engine import limits
from rochallor_server.engine.clock import IdGenerator
from rochallor_server.engine.definitions import CompiledDefinition, WaitingStep
from rochallor_server.engine.model import (
    AuditEntry,
    ExecutionStatus,
    Instance,
    InstanceStatus,
    Job,
    JobStatus,
    JsonObject,
    StepExecution,
    Timer,
    UserTask,
    UserTaskStatus,
)
from rochallor_server.errors import BadRequest, Conflict, NotFound

ST = rv.StepType
MAX_SYNCHRONOUS_ENTRIES = 1000
NEVER = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)
"""When a timer that cannot come due is scheduled."""
NO_BRANCH_MATCHED = "no conditionalNextSteps branch matched (DecisionNoBranchMatched)"
INTERRUPTED = "interrupted by boundary timer"
STOPPED_BY_FAILURE = "instance failed"
_PARKING = (ST.USER_TASK, ST.WAIT)


@attrs.frozen(kw_only=True)
class InstanceState:
    """What the core needs of a stored instance: its row and its running executions."""

    instance: Instance
    running: tuple[StepExecution, ...] = ()


@attrs.frozen(kw_only=True)
class Outcome:
    instance: Instance
    commands: list[cmd.Command]


class _Transition:
    """Working copy of one instance while one event is applied."""

    def __init__(
        self,
        definition: CompiledDefinition,
        state: InstanceState,
        now: dt.datetime,
        ids: IdGenerator,
        audit_actor: str,
    ) -> None:
        inst = state.instance
        self.d = definition
        self.base = inst
        self.now = now
        self.ids = ids
        self.actor = audit_actor
        self.status = inst.status
        self.current = list(inst.current_step_ids)
        self.variables: JsonObject = dict(inst.variables)
        self.joins = dict(inst.join_arrivals)
        self.attempts = dict(inst.step_attempts)
        self.running: dict[str, StepExecution] = {e.id: e for e in state.running}
        self.failure_reason = inst.failure_reason
        self.completed_at = inst.completed_at
        self.commands: list[cmd.Command] = []
        # Where each execution inserted by this event sits in ``commands``.
        self.inserted: dict[str, int] = {}
        self.queue: deque[str] = deque()
        self.entries = 0

    # -- bookkeeping ----------------------------------------------------------------------

    @property
    def terminal(self) -> bool:
        return self.status.terminal

    def audit(self, kind: str, actor: str | None = None, **detail: Any) -> None:
        entry = AuditEntry(
            kind=kind, actor=actor or self.actor, instance_id=self.base.id, detail=detail
        )
        self.commands.append(cmd.Audit(entry=entry))

    def merge(self, delta: JsonObject | None) -> None:
        """Shallow merge: each top-level key of the delta replaces the variable."""
        if delta:
            self.variables.update(delta)

    def add_current(self, step_id: str) -> None:
        if step_id not in self.current:
            self.current.append(step_id)

    def drop_current(self, step_id: str) -> None:
        still_running = any(e.step_id == step_id for e in self.running.values())
        if not still_running and step_id in self.current:
            self.current.remove(step_id)

    def new_execution(self, step: rv.Step) -> StepExecution:
        attempt = self.attempts.get(step.id, 0) + 1
        self.attempts[step.id] = attempt
        execution = StepExecution(
            id=self.ids.new_id(),
            instance_id=self.base.id,
            step_id=step.id,
            step_type=step.type.value,
            attempt_number=attempt,
            status=ExecutionStatus.RUNNING,
            started_at=self.now,
        )
        self.running[execution.id] = execution
        self.inserted[execution.id] = len(self.commands)
        self.commands.append(
            cmd.InsertExecution(execution=execution, input_snapshot=dict(self.variables))
        )
        return execution

    def finish(
        self,
        execution: StepExecution,
        status: ExecutionStatus,
        *,
        reason: str | None = None,
        output: JsonObject | None = None,
    ) -> None:
        self.running.pop(execution.id, None)
        position = self.inserted.get(execution.id)
        if position is not None:
            # Entered and left within this event (decisions, gateways, ends…): insert it
            # finished rather than insert then update.
            insert = self.commands[position]
            assert isinstance(insert, cmd.InsertExecution)
            self.commands[position] = attrs.evolve(
                insert,
                execution=attrs.evolve(
                    execution, status=status, ended_at=self.now, failure_reason=reason
                ),
                output_snapshot=output,
            )
            return
        self.commands.append(
            cmd.FinishExecution(
                execution_id=execution.id,
                status=status,
                ended_at=self.now,
                failure_reason=reason,
                output_snapshot=output,
            )
        )

    # -- terminal states ------------------------------------------------------------------

    def _close_everything(
        self, reason: str, *, failing: StepExecution | None = None, keep_joins: bool = False
    ) -> None:
        # Open work (jobs, user tasks, timers) only ever belongs to running executions: every
        # way out of RUNNING closes its own. So with nothing running there is nothing to cancel.
        open_work = bool(self.running) or failing is not None
        for execution in list(self.running.values()):
            self.finish(execution, ExecutionStatus.SKIPPED, reason=reason)
        if not keep_joins:
            self.joins.clear()
        if open_work:
            self.commands.append(cmd.CancelOpenWork(instance_id=self.base.id, at=self.now))
        self.queue.clear()
        self.completed_at = self.now

    def complete_instance(self, end_step_id: str) -> None:
        self._close_everything(f"instance completed at {end_step_id}")
        self.status = InstanceStatus.COMPLETED
        self.current = []
        self.audit("instance-completed", "engine", endStepId=end_step_id)
        target = self.d.chain_to
        if target is not None:
            self.commands.append(
                cmd.ChainNext(
                    parent_instance_id=self.base.id,
                    definition_id=target,
                    variables=dict(self.variables),
                    business_key=self.base.business_key,
                )
            )

    def fail_instance(self, reason: str, failing: StepExecution | None) -> None:
        if failing is not None and failing.id in self.running:
            self.finish(failing, ExecutionStatus.FAILED, reason=reason)
        # A FAILED instance keeps its join arrivals, like its current steps: a retry resumes
        # the branches that were running and the joins must still count the ones that arrived.
        self._close_everything(STOPPED_BY_FAILURE, failing=failing, keep_joins=True)
        self.status = InstanceStatus.FAILED
        self.failure_reason = reason
        self.audit("instance-failed", "engine", reason=reason)

    # -- entering steps -------------------------------------------------------------------

    def enter(self, step_id: str) -> None:
        self.queue.append(step_id)

    def run(self) -> None:
        """Enter queued steps, continuing through every step that does not wait."""
        while self.queue and not self.terminal:
            step_id = self.queue.popleft()
            self.entries += 1
            if self.entries > MAX_SYNCHRONOUS_ENTRIES:
                self.fail_instance("synchronous step limit exceeded", None)
                return
            self._enter(self.d.steps[step_id])

    def _schedule_timers(self, step: WaitingStep, execution: StepExecution) -> None:
        for event in step.boundary_events or ():
            try:
                fire_at = self.d.durations[event.duration].add_to(self.now)
            except rv.DurationError:
                # Only a version stored before the validator bounded durations gets here: a
                # timer due past the calendar never fires.
                fire_at = NEVER
            timer = Timer(
                id=self.ids.new_id(),
                instance_id=self.base.id,
                step_execution_id=execution.id,
                target_step_id=event.target_step_id,
                fire_at=fire_at,
                interrupting=bool(event.interrupting),
            )
            self.commands.append(cmd.InsertTimer(timer=timer))

    def _enter(self, step: rv.Step) -> None:
        if isinstance(step, rv.JoinGatewayStep):
            self._arrive(step)
            return
        execution = self.new_execution(step)
        # Exhaustive over the validator's step classes: mypy rejects a missing case.
        match step:
            case rv.ServiceTaskStep():
                self.add_current(step.id)
                job = Job(
                    id=self.ids.new_id(),
                    instance_id=self.base.id,
                    step_execution_id=execution.id,
                    step_id=step.id,
                    job_type=step.job_type or step.id,
                    status=JobStatus.UNLOCKED,
                    # capped for versions stored before the validator bounded it
                    retries_remaining=min(step.retry_count or 0, rv.MAX_RETRY_COUNT),
                    payload=dict(self.variables),
                    created_at=self.now,
                )
                self.commands.append(cmd.InsertJob(job=job))
                self._schedule_timers(step, execution)
            case rv.UserTaskStep():
                self.add_current(step.id)
                task = UserTask(
                    id=self.ids.new_id(),
                    instance_id=self.base.id,
                    step_execution_id=execution.id,
                    step_id=step.id,
                    status=UserTaskStatus.OPEN,
                    payload=dict(self.variables),
                    created_at=self.now,
                )
                self.commands.append(cmd.InsertUserTask(task=task))
                self._schedule_timers(step, execution)
            case rv.WaitStep():
                self.add_current(step.id)
                self._schedule_timers(step, execution)
            case rv.DecisionStep():
                target = self.route(step, execution)
                if target is not None:
                    self.finish(execution, ExecutionStatus.COMPLETED, output={})
                    self.enter(target)
            case rv.TransformationStep():
                try:
                    assigned = rv.evaluate_transformation(step, self.variables, now=self.now)
                except rv.ValidatorError as exc:
                    self.fail_instance(str(exc), execution)
                    return
                if (problem := limits.json_problem(assigned, "variables")) is not None:
                    self.fail_instance(
                        f"transformation result cannot be stored: {problem}", execution
                    )
                    return
                self.merge(assigned)
                self.finish(execution, ExecutionStatus.COMPLETED, output=assigned)
                self.enter(_next_step(step))
            case rv.DecisionTableStep():
                table = self.d.tables.get(step.id)
                if table is None:  # a stored version whose table no longer compiles
                    self.fail_instance(self.d.table_errors[step.id], execution)
                    return
                try:
                    outputs, matched = table.decide(self.variables, now=self.now)
                except rv.ValidatorError as exc:
                    self.fail_instance(str(exc), execution)
                    return
                if (problem := limits.json_problem(outputs, "variables")) is not None:
                    self.fail_instance(
                        f"decision table result cannot be stored: {problem}", execution
                    )
                    return
                self.audit("decision-table-evaluated", "engine", stepId=step.id, rules=matched)
                self.merge(outputs)
                self.finish(execution, ExecutionStatus.COMPLETED, output=outputs)
                self.enter(_next_step(step))
            case rv.ParallelGatewayStep():
                self.finish(execution, ExecutionStatus.COMPLETED, output={})
                for branch in step.parallel_next_steps or ():
                    self.enter(branch)
            case rv.EndStep():
                self.finish(execution, ExecutionStatus.COMPLETED, output={})
                self.complete_instance(step.id)
            case _:
                assert_never(step)

    def _arrive(self, join: rv.JoinGatewayStep) -> None:
        """A path reaches a JOIN_GATEWAY: count it; fire when every branch has arrived."""
        count = self.joins.get(join.id, 0) + 1
        waiting = next((e for e in self.running.values() if e.step_id == join.id), None)
        if waiting is None:
            waiting = self.new_execution(join)
            self.add_current(join.id)
        if count < self.d.join_branches.get(join.id, 1):
            self.joins[join.id] = count
            return
        self.joins.pop(join.id, None)
        self.finish(waiting, ExecutionStatus.COMPLETED, output={})
        self.drop_current(join.id)
        self.enter(_next_step(join))

    def route(
        self, step: rv.DecisionStep | WaitingStep, failing: StepExecution | None
    ) -> str | None:
        """Evaluate ``conditionalNextSteps`` in written order; fail the instance on error."""
        try:
            return rv.select_branch(step.conditional_next_steps or (), self.variables)
        except rv.DecisionNoBranchMatched:
            self.fail_instance(NO_BRANCH_MATCHED, failing)
        except rv.ExpressionError as exc:
            self.fail_instance(routing_failure_reason(exc), failing)
        return None

    # -- leaving waiting steps ------------------------------------------------------------

    def leave(self, execution: StepExecution, delta: JsonObject | None) -> None:
        """A waiting step finished normally: merge, close, cancel its timers, advance."""
        self.merge(delta)
        self.finish(execution, ExecutionStatus.COMPLETED, output=dict(delta or {}))
        step = self.d.steps[execution.step_id]
        if not isinstance(step, WaitingStep):  # pragma: no cover - only they are left
            raise AssertionError(f"step {step.id} ({step.type}) does not wait")
        if step.boundary_events:
            self.commands.append(
                cmd.CancelOpenWork(
                    instance_id=self.base.id,
                    at=self.now,
                    execution_ids=(execution.id,),
                    timers_only=True,
                )
            )
        self.drop_current(execution.step_id)
        if step.conditional_next_steps:
            target = self.route(step, None)
            if target is not None:
                self.enter(target)
        elif step.next_step:
            self.enter(step.next_step)
        elif not self.current:
            self.complete_instance(step.id)
        self.run()

    # -- result ---------------------------------------------------------------------------

    def recompute_status(self) -> None:
        if self.terminal:
            return
        parked = any(
            e.step_type in _PARKING and e.step_id in self.current for e in self.running.values()
        )
        self.status = InstanceStatus.WAITING if parked else InstanceStatus.ACTIVE

    def instance(self) -> Instance:
        return attrs.evolve(
            self.base,
            status=self.status,
            current_step_ids=tuple(self.current),
            variables=self.variables,
            join_arrivals=self.joins,
            step_attempts=self.attempts,
            completed_at=self.completed_at,
            failure_reason=self.failure_reason,
        )

    def outcome(self) -> Outcome:
        self.recompute_status()
        instance = self.instance()
        self.commands.append(cmd.SaveInstance(instance=instance))
        return Outcome(instance=instance, commands=self.commands)


def _next_step(step: rv.TransformationStep | rv.DecisionTableStep | rv.JoinGatewayStep) -> str:
    if step.next_step is None:  # pragma: no cover - the validator requires it
        raise AssertionError(f"step {step.id} ({step.type}) has no nextStep")
    return step.next_step


def routing_failure_reason(exc: rv.ExpressionError) -> str:
    """``failureReason`` of a routing expression error (``semantics.md`` §14.3)."""
    if isinstance(exc, rv.NonBooleanResult):
        return str(exc)
    return f"expression eval error: {exc}"


def _require_running(state: InstanceState) -> None:
    if state.instance.status.terminal:
        raise Conflict("instance is in a terminal state")


# -- events ---------------------------------------------------------------------------------


def start(
    definition: CompiledDefinition,
    *,
    instance_id: str,
    variables: JsonObject,
    business_key: str | None,
    now: dt.datetime,
    ids: IdGenerator,
    actor: str = "api",
) -> Outcome:
    """Create an instance and run its synchronous part (``semantics.md`` §2 "Start")."""
    instance = Instance(
        id=instance_id,
        definition_id=definition.id,
        definition_version=definition.version,
        status=InstanceStatus.ACTIVE,
        variables=dict(variables),
        started_at=now,
        business_key=business_key or None,
    )
    t = _Transition(definition, InstanceState(instance=instance), now, ids, actor)
    t.audit(
        "instance-started",
        definitionId=definition.id,
        definitionVersion=definition.version,
        businessKey=instance.business_key,
    )
    t.enter(definition.first_step_id)
    t.run()
    t.recompute_status()
    final = t.instance()
    # The row is inserted once, in its final state, before anything that references it.
    return Outcome(instance=final, commands=[cmd.InsertInstance(instance=final), *t.commands])


def complete_job(
    definition: CompiledDefinition,
    state: InstanceState,
    job: Job,
    *,
    worker_id: str | None,
    variables: JsonObject | None,
    now: dt.datetime,
    ids: IdGenerator,
) -> Outcome | None:
    """First completion wins; a completion of a finished job is a no-op (``None``)."""
    if not job.status.open or state.instance.status.terminal:
        return None
    execution = next((e for e in state.running if e.id == job.step_execution_id), None)
    if execution is None:
        return None
    t = _Transition(definition, state, now, ids, worker_id or "worker")
    t.commands.append(cmd.CompleteJob(job_id=job.id, worker_id=worker_id, at=now))
    t.audit("job-completed", jobId=job.id, stepId=job.step_id)
    t.leave(execution, variables)
    return t.outcome()


def fail_job(
    definition: CompiledDefinition,
    state: InstanceState,
    job: Job,
    *,
    worker_id: str | None,
    error_message: str | None,
    retryable: bool,
    now: dt.datetime,
    ids: IdGenerator,
) -> Outcome | None:
    """Retry while the budget lasts, else fail the step and the instance (§8.6)."""
    if not job.status.open or state.instance.status.terminal:
        return None
    t = _Transition(definition, state, now, ids, worker_id or "worker")
    stale = job.status is JobStatus.LOCKED and worker_id and job.worker_id != worker_id
    if stale:
        t.audit("job-failure-ignored", jobId=job.id, reason="stale report: lease held by another")
        return Outcome(instance=state.instance, commands=t.commands)
    message = (error_message or "").strip()
    if retryable and job.retries_remaining > 0:
        remaining = job.retries_remaining - 1
        t.commands.append(cmd.RetryJob(job=job, retries_remaining=remaining))
        t.audit("job-retried", jobId=job.id, errorMessage=message, retriesRemaining=remaining)
        return Outcome(instance=state.instance, commands=t.commands)
    reason = message or f"job {job.job_type} failed"
    t.commands.append(cmd.FailJob(job_id=job.id, worker_id=worker_id, at=now))
    t.audit("job-failed", jobId=job.id, errorMessage=reason)
    execution = next((e for e in state.running if e.id == job.step_execution_id), None)
    t.fail_instance(reason, execution)
    return t.outcome()


def check_user_task(definition: CompiledDefinition, instance: Instance, step_id: str) -> None:
    """The checks of ``semantics.md`` §12.1 that need no task row, in their order."""
    step = definition.steps.get(step_id)
    if step is None:
        raise NotFound("user task not found")
    if not isinstance(step, rv.UserTaskStep):
        raise BadRequest("step type does not match the endpoint")
    if instance.status.terminal:
        raise Conflict("instance is in a terminal state")


def complete_user_task(
    definition: CompiledDefinition,
    state: InstanceState,
    step_id: str,
    task: UserTask | None,
    *,
    variables: JsonObject | None,
    completed_by: str | None,
    now: dt.datetime,
    ids: IdGenerator,
) -> Outcome:
    """Complete the OPEN task of ``step_id`` (checks of ``semantics.md`` §12.1, in order)."""
    check_user_task(definition, state.instance, step_id)
    execution = None
    if task is not None and task.status is UserTaskStatus.OPEN:
        execution = next((e for e in state.running if e.id == task.step_execution_id), None)
    if task is None or execution is None:
        raise NotFound("user task not found")
    t = _Transition(definition, state, now, ids, completed_by or "api")
    t.commands.append(
        cmd.CompleteUserTask(
            task_id=task.id, result=dict(variables or {}), completed_by=completed_by, at=now
        )
    )
    t.audit("user-task-completed", stepId=task.step_id)
    t.leave(execution, variables)
    return t.outcome()


def signal(
    definition: CompiledDefinition,
    state: InstanceState,
    step_id: str,
    *,
    variables: JsonObject | None,
    now: dt.datetime,
    ids: IdGenerator,
) -> Outcome:
    """Resume a parked WAIT (checks of ``semantics.md`` §12.2, in order)."""
    not_parked = "wait step is not currently parked on the instance"
    step = definition.steps.get(step_id)
    if step is None:
        raise Conflict(not_parked)
    if not isinstance(step, rv.WaitStep):
        raise BadRequest("step type does not match the endpoint")
    _require_running(state)
    if step_id not in state.instance.current_step_ids:
        raise Conflict(not_parked)
    execution = next((e for e in state.running if e.step_id == step_id), None)
    if execution is None:
        raise Conflict(not_parked)
    t = _Transition(definition, state, now, ids, "api")
    t.audit("wait-signalled", stepId=step_id)
    t.leave(execution, variables)
    return t.outcome()


def fire_timer(
    definition: CompiledDefinition,
    state: InstanceState,
    timer: Timer,
    *,
    now: dt.datetime,
    ids: IdGenerator,
) -> Outcome:
    """A due boundary timer (``semantics.md`` §11.2 to §11.3)."""
    t = _Transition(definition, state, now, ids, "engine")
    parent = t.running.get(timer.step_execution_id)
    if state.instance.status.terminal or parent is None:
        # Its step has finished: the timer must not fire (I10).
        t.commands.append(
            cmd.CancelOpenWork(
                instance_id=timer.instance_id,
                at=now,
                execution_ids=(timer.step_execution_id,),
                timers_only=True,
            )
        )
        return Outcome(instance=state.instance, commands=t.commands)
    t.commands.append(cmd.MarkTimerFired(timer_id=timer.id))
    t.audit(
        "timer-fired",
        scheduleId=timer.id,
        target=timer.target_step_id,
        interrupting=timer.interrupting,
    )
    if timer.interrupting:
        t.finish(parent, ExecutionStatus.FAILED, reason=INTERRUPTED)
        t.commands.append(
            cmd.CancelOpenWork(instance_id=timer.instance_id, at=now, execution_ids=(parent.id,))
        )
        t.drop_current(parent.step_id)
    t.enter(timer.target_step_id)
    t.run()
    return t.outcome()


def cancel(
    definition: CompiledDefinition,
    state: InstanceState,
    *,
    reason: str,
    now: dt.datetime,
    ids: IdGenerator,
) -> Outcome:
    if state.instance.status.terminal:
        raise Conflict("instance is in a terminal state")
    t = _Transition(definition, state, now, ids, "api")
    t._close_everything("instance cancelled")
    t.status = InstanceStatus.CANCELLED
    t.failure_reason = reason
    t.audit("instance-cancelled", reason=reason)
    return t.outcome()


def retry(
    definition: CompiledDefinition,
    state: InstanceState,
    history: Sequence[StepExecution],
    *,
    variables: JsonObject | None,
    now: dt.datetime,
    ids: IdGenerator,
    actor: str = "api",
) -> Outcome:
    """Resume a FAILED instance from the step that failed (an incident).

    The failure is the transition that set the instance's ``completedAt``: the steps it
    failed are entered again (a ``SERVICE_TASK`` gets a new job with the step's full
    ``retryCount``, a decision is evaluated again, boundary timers start again), and so are
    the steps it stopped on other branches (``SKIPPED`` with ``instance failed``). A task whose
    inline routing failed routes again. Joins keep the arrivals they had. ``variables`` are
    shallow-merged first, so the re-entered steps see them. The instance is ``ACTIVE`` or
    ``WAITING`` again (or terminal at once, if the synchronous part ends or fails again).
    """
    instance = state.instance
    if instance.status is not InstanceStatus.FAILED:
        raise Conflict(
            f"instance is {instance.status.value}: only a FAILED instance can be retried"
        )
    ended = sorted(
        (e for e in history if e.ended_at is not None and e.ended_at == instance.completed_at),
        key=lambda e: (e.started_at, e.id),
    )
    failed = [
        e for e in ended if e.status is ExecutionStatus.FAILED and e.failure_reason != INTERRUPTED
    ]
    # Without a failed step, the failure was the inline routing of the task that completed.
    rerouted = [
        (e, step)
        for e in ended
        if not failed
        and e.status is ExecutionStatus.COMPLETED
        and isinstance(step := definition.steps.get(e.step_id), WaitingStep)
        and step.conditional_next_steps
    ]
    if not failed and not rerouted:
        raise Conflict("the failure is in no step that can run again: nothing to retry")
    stopped = [
        e
        for e in ended
        if e.status is ExecutionStatus.SKIPPED and e.failure_reason == STOPPED_BY_FAILURE
    ]
    t = _Transition(definition, state, now, ids, actor)
    t.status = InstanceStatus.ACTIVE
    t.failure_reason = None
    t.completed_at = None
    t.merge(variables)
    # Joins that were waiting still wait; every other current step is entered again below.
    t.current = [s for s in instance.current_step_ids if t.joins.get(s)]
    resumed = sorted([*failed, *stopped], key=lambda e: (e.started_at, e.id))
    t.audit(
        "instance-retried",
        stepIds=[e.step_id for e in failed] + [e.step_id for e, _ in rerouted],
        resumedStepIds=[e.step_id for e in stopped if e.step_type != ST.JOIN_GATEWAY.value],
        variables=sorted(variables or {}),
        previousFailureReason=instance.failure_reason,
    )
    for execution in resumed:
        if execution.step_type == ST.JOIN_GATEWAY.value:
            continue  # its arrivals are kept; the next one counts as usual
        t.enter(execution.step_id)
    for _, step in rerouted:
        target = t.route(step, None)
        if target is not None:
            t.enter(target)
    t.run()
    return t.outcome()


def is_terminal_outcome(commands: Iterable[cmd.Command]) -> bool:
    return any(
        isinstance(c, cmd.SaveInstance | cmd.InsertInstance) and c.instance.status.terminal
        for c in commands
    )
