"""A stored definition version prepared for execution: parsed once, expressions compiled once.

The service caches :class:`CompiledDefinition` per ``(id, version)``; versions are immutable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

import attrs

import rochallor_validator as rv
from rochallor_server.engine.model import DefinitionRecord

#: Steps that park the instance until something outside the engine happens (a worker's
#: report, a user, a signal): the only steps with boundary timers, the only ones left by
#: :func:`~rochallor_server.engine.instance.complete_job` and its kin.
WaitingStep: TypeAlias = rv.ServiceTaskStep | rv.UserTaskStep | rv.WaitStep


@attrs.frozen(kw_only=True)
class CompiledDefinition:
    record: DefinitionRecord
    definition: rv.WorkflowDefinition
    steps: Mapping[str, rv.Step]
    first_step_id: str
    join_branches: Mapping[str, int]
    """For each JOIN_GATEWAY: how many branches its owning gateway starts."""
    tables: Mapping[str, rv.CompiledDecisionTable]
    table_errors: Mapping[str, str] = attrs.field(factory=dict)
    """Why a decision table of a version stored before a validator limit does not compile."""
    durations: Mapping[str, rv.IsoDuration]
    """Parsed boundary-event durations keyed by their text."""

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def version(self) -> int:
        return self.record.version

    @property
    def chain_to(self) -> str | None:
        if self.definition.auto_start_next_workflow and self.definition.next_workflow_id:
            return self.definition.next_workflow_id
        return None


def compile_definition(record: DefinitionRecord) -> CompiledDefinition:
    """Parse and prepare a stored version (it was validated when it was uploaded).

    Read without the validator's limits: a version stored before a limit existed must still
    load, so that its running instances can advance (``docs/limits.md``).
    """
    definition = rv.parse_definition(record.document, limits=False)
    steps = {step.id: step for step in definition.steps}
    joins: dict[str, int] = {}
    tables: dict[str, rv.CompiledDecisionTable] = {}
    table_errors: dict[str, str] = {}
    durations: dict[str, rv.IsoDuration] = {}
    for step in definition.steps:
        if isinstance(step, rv.ParallelGatewayStep) and step.join_step:
            joins[step.join_step] = len(step.parallel_next_steps or ())
        elif isinstance(step, rv.DecisionTableStep):
            try:
                tables[step.id] = rv.compile_decision_table(step)
            except rv.ValidatorError as exc:  # stored before a limit it now breaks
                table_errors[step.id] = str(exc)
        elif isinstance(step, WaitingStep):
            for event in step.boundary_events or ():
                durations[event.duration] = rv.parse_duration(event.duration)
    return CompiledDefinition(
        record=record,
        definition=definition,
        steps=steps,
        first_step_id=definition.steps[0].id,
        join_branches=joins,
        tables=tables,
        table_errors=table_errors,
        durations=durations,
    )
