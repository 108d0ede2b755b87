"""The validation rules of workflow-format.md section 5 and decision-table.md section 4.

Every rule appends to one list, so a definition is always reported with all its problems.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any, Final

from rochallor_validator._decision_table import (
    AGGREGATIONS,
    HIT_POLICIES,
    EntrySyntaxError,
    aggregation_of,
    parse_input_entry,
)
from rochallor_validator._duration import parse_duration
from rochallor_validator._errors import (
    DurationError,
    ExpressionLimitError,
    ExpressionSyntaxError,
    ValidationIssue,
)
from rochallor_validator._expression import compile_expression
from rochallor_validator._limits import (
    MAX_DURATION_DAYS,
    MAX_IDENTIFIER_LENGTH,
    MAX_RETRY_COUNT,
    MAX_VERSION,
    MIN_VERSION,
)
from rochallor_validator._model import (
    BoundaryEvent,
    ConditionalNextStep,
    DecisionStep,
    DecisionTableStep,
    EndStep,
    JoinGatewayStep,
    ParallelGatewayStep,
    ServiceTaskStep,
    Step,
    TransformationStep,
    UserTaskStep,
    WaitStep,
    WorkflowDefinition,
)
from rochallor_validator._runtime import compile_value, is_expression_string

ID_RE: Final = re.compile(r"[A-Za-z0-9_:\-]{1,256}")
_PLAIN_KEY_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def _key(name: str) -> str:
    """Path segment for an arbitrary object key."""
    if _PLAIN_KEY_RE.fullmatch(name):
        return f".{name}"
    return "[" + json.dumps(name, ensure_ascii=False) + "]"


class _Checker:
    def __init__(self, definition: WorkflowDefinition, *, limits: bool = True) -> None:
        self.definition = definition
        #: Check the limits of ``_limits`` (off only to read back definitions stored earlier).
        self.limits = limits
        self.issues: list[ValidationIssue] = []
        self.ids: dict[str, Step] = {}
        for step in definition.steps:
            if not _blank(step.id):
                self.ids.setdefault(step.id, step)

    def error(
        self,
        code: str,
        path: str,
        message: str,
        step_id: str | None = None,
        *,
        position: int | None = None,
    ) -> None:
        self.issues.append(
            ValidationIssue(
                code=code, path=path, message=message, step_id=step_id, position=position
            )
        )

    def expression_error(
        self, code: str, path: str, prefix: str, source: Any, exc: ExpressionSyntaxError, sid: str
    ) -> None:
        """Report a bad expression: ``EXPR_LIMIT`` past a limit, otherwise ``code``."""
        if isinstance(exc, ExpressionLimitError):
            if not self.limits:
                return
            self.error(
                "EXPR_LIMIT",
                path,
                f"{prefix}: {exc.detail} (at offset {exc.position})",
                sid,
                position=_offset(source, exc),
            )
        else:
            self.error(
                code, path, f"{prefix} {source!r}: {exc.detail}", sid, position=_offset(source, exc)
            )

    def too_long(self, value: str | None, path: str, what: str, sid: str | None = None) -> None:
        """``STRING_LENGTH`` when ``value`` has more than ``MAX_IDENTIFIER_LENGTH`` characters."""
        if self.limits and value is not None and len(value) > MAX_IDENTIFIER_LENGTH:
            self.error(
                "STRING_LENGTH",
                path,
                f"{what} is {len(value)} characters long; at most {MAX_IDENTIFIER_LENGTH} "
                "are allowed",
                sid,
            )

    def warning(self, code: str, path: str, message: str, step_id: str | None = None) -> None:
        self.issues.append(
            ValidationIssue(
                code=code, path=path, message=message, severity="warning", step_id=step_id
            )
        )

    # ----------------------------------------------------------------------------------------
    def run(self) -> list[ValidationIssue]:
        d = self.definition
        if not ID_RE.fullmatch(d.id):
            self.error(
                "ID_FORMAT",
                "$.id",
                f"definition id {d.id!r} must be 1-256 characters of letters, digits, "
                "'_', ':' or '-'",
            )
        if _blank(d.name):
            self.error("NAME_REQUIRED", "$.name", "definition name is required")
        if self.limits and d.version is not None and not MIN_VERSION <= d.version <= MAX_VERSION:
            self.error(
                "VERSION_RANGE",
                "$.version",
                f"version must be a 32-bit integer ({MIN_VERSION} to {MAX_VERSION})",
            )
        self.too_long(d.next_workflow_id, "$.nextWorkflowId", "nextWorkflowId")
        if d.auto_start_next_workflow and _blank(d.next_workflow_id):
            self.error(
                "NEXT_WORKFLOW_CONSISTENCY",
                "$.nextWorkflowId",
                "nextWorkflowId is required when autoStartNextWorkflow is true",
            )
        if not d.steps:
            self.error("STEPS_NONEMPTY", "$.steps", "steps must contain at least one step")
            return self.issues
        seen: set[str] = set()
        for index, step in enumerate(d.steps):
            path = f"$.steps[{index}]"
            if _blank(step.id):
                self.error("STEP_ID_REQUIRED", f"{path}.id", f"step {index} has no id")
                continue
            if len(step.id) > MAX_IDENTIFIER_LENGTH:
                self.too_long(step.id, f"{path}.id", f"step id {step.id[:40]!r}...")
            if step.id in seen:
                self.error(
                    "STEP_ID_UNIQUE", f"{path}.id", f'step id "{step.id}" is used twice', step.id
                )
            seen.add(step.id)
            self.check_step(step, path)
        self.check_joins()
        self.check_graph()
        return self.issues

    # ----------------------------------------------------------------------------------------
    def ref(self, target: str | None, path: str, step: Step, what: str) -> None:
        if target is not None and target not in self.ids:
            self.error(
                "REF_RESOLVES",
                path,
                f'step "{step.id}": {what} "{target}" does not name a step',
                step.id,
            )

    def check_step(self, step: Step, path: str) -> None:
        sid = step.id
        if _blank(step.name):
            self.error("NAME_REQUIRED", f"{path}.name", f'step "{sid}" has no name', sid)
        for key in step.ignored_fields:
            if key == "boundaryEvents":
                self.error(
                    "BOUNDARY_PARENT_SUPPORTS",
                    f"{path}.boundaryEvents",
                    f'step "{sid}": boundary events are not allowed on {step.type}',
                    sid,
                )
            else:
                self.warning(
                    "INAPPLICABLE_FIELD",
                    f"{path}{_key(key)}",
                    f'step "{sid}": field "{key}" is not used by {step.type} and is ignored',
                    sid,
                )
        if isinstance(step, ServiceTaskStep | UserTaskStep | WaitStep):
            self.check_routing_step(step, path)
        elif isinstance(step, DecisionStep):
            if not step.conditional_next_steps:
                self.error(
                    "DECISION_HAS_BRANCHES",
                    f"{path}.conditionalNextSteps",
                    f'decision "{sid}" needs at least one conditionalNextSteps entry',
                    sid,
                )
            self.check_conditionals(step, step.conditional_next_steps or (), path)
        elif isinstance(step, TransformationStep):
            self.check_transformation(step, path)
        elif isinstance(step, ParallelGatewayStep):
            self.check_parallel(step, path)
        elif isinstance(step, JoinGatewayStep):
            if _blank(step.next_step):
                self.error("JOIN_HAS_NEXT", f"{path}.nextStep", f'join "{sid}" needs nextStep', sid)
            else:
                self.ref(step.next_step, f"{path}.nextStep", step, "nextStep")
        elif isinstance(step, DecisionTableStep):
            self.check_decision_table(step, path)

    def check_routing_step(
        self, step: ServiceTaskStep | UserTaskStep | WaitStep, path: str
    ) -> None:
        sid = step.id
        if isinstance(step, ServiceTaskStep):
            if _blank(step.job_type):
                self.error(
                    "SERVICE_TASK_JOB_TYPE",
                    f"{path}.jobType",
                    f'service task "{sid}" needs a jobType',
                    sid,
                )
            retry = step.retry_count
            if retry is not None and (retry < 0 or (self.limits and retry > MAX_RETRY_COUNT)):
                self.error(
                    "RETRY_COUNT_RANGE",
                    f"{path}.retryCount",
                    f'step "{sid}": retryCount must be an integer from 0 to {MAX_RETRY_COUNT}',
                    sid,
                )
        if isinstance(step, ServiceTaskStep | UserTaskStep):
            self.too_long(step.job_type, f"{path}.jobType", f'step "{sid}": jobType', sid)
        if (
            isinstance(step, WaitStep)
            and _blank(step.next_step)
            and not step.conditional_next_steps
        ):
            self.error(
                "WAIT_HAS_NEXT",
                f"{path}.nextStep",
                f'wait "{sid}" needs nextStep (or conditionalNextSteps)',
                sid,
            )
        elif step.next_step is not None:
            self.ref(step.next_step, f"{path}.nextStep", step, "nextStep")
        if step.conditional_next_steps is not None:
            if not step.conditional_next_steps:
                self.error(
                    "DECISION_HAS_BRANCHES",
                    f"{path}.conditionalNextSteps",
                    f'step "{sid}": conditionalNextSteps, when present, must not be empty',
                    sid,
                )
            self.check_conditionals(step, step.conditional_next_steps, path)
        for j, event in enumerate(step.boundary_events or ()):
            self.check_boundary(step, event, f"{path}.boundaryEvents[{j}]")

    def check_conditionals(
        self, step: Step, branches: Iterable[ConditionalNextStep], path: str
    ) -> None:
        for k, branch in enumerate(branches):
            bpath = f"{path}.conditionalNextSteps[{k}]"
            self.ref(branch.target, f"{bpath}.target", step, "conditionalNextSteps target")
            try:
                compiled = compile_expression(branch.condition)
            except ExpressionSyntaxError as exc:
                self.expression_error(
                    "DECISION_EXPR_SYNTAX",
                    f"{bpath}.condition",
                    f'step "{step.id}": condition',
                    branch.condition,
                    exc,
                    step.id,
                )
                continue
            if not compiled.can_be_boolean:
                self.error(
                    "DECISION_EXPR_NON_BOOLEAN",
                    f"{bpath}.condition",
                    f'step "{step.id}": condition {branch.condition!r} can never be a boolean',
                    step.id,
                )

    def check_transformation(self, step: TransformationStep, path: str) -> None:
        sid = step.id
        if _blank(step.next_step):
            self.error(
                "TRANSFORMATION_HAS_NEXT",
                f"{path}.nextStep",
                f'transformation "{sid}" needs nextStep',
                sid,
            )
        else:
            self.ref(step.next_step, f"{path}.nextStep", step, "nextStep")
        if not step.transformations:
            self.error(
                "TRANSFORMATION_HAS_ENTRIES",
                f"{path}.transformations",
                f'transformation "{sid}" needs at least one entry',
                sid,
            )
        for entry in step.transformations or ():
            epath = f"{path}.transformations{_key(entry.variable)}"
            if _blank(entry.variable):
                self.error(
                    "TRANSFORMATION_HAS_ENTRIES",
                    epath,
                    f'transformation "{sid}": variable names must not be blank',
                    sid,
                )
            try:
                compile_value(entry.value)
            except ExpressionSyntaxError as exc:
                self.expression_error(
                    "TRANSFORMATION_EXPR_SYNTAX",
                    epath,
                    f'transformation "{sid}": value',
                    entry.value,
                    exc,
                    sid,
                )

    def check_parallel(self, step: ParallelGatewayStep, path: str) -> None:
        sid = step.id
        branches = step.parallel_next_steps or ()
        if len(branches) < 2:
            self.error(
                "PARALLEL_MIN_BRANCHES",
                f"{path}.parallelNextSteps",
                f'parallel gateway "{sid}" needs at least 2 parallelNextSteps',
                sid,
            )
        seen: set[str] = set()
        for k, target in enumerate(branches):
            bpath = f"{path}.parallelNextSteps[{k}]"
            if target in seen or target == sid or target == step.join_step:
                self.error(
                    "PARALLEL_DISTINCT_BRANCHES",
                    bpath,
                    f'parallel gateway "{sid}": branch "{target}" is a duplicate, the gateway '
                    "itself or its join step",
                    sid,
                )
            seen.add(target)
            self.ref(target, bpath, step, "parallelNextSteps element")
        if _blank(step.join_step):
            self.error(
                "PARALLEL_HAS_JOIN",
                f"{path}.joinStep",
                f'parallel gateway "{sid}" needs a joinStep',
                sid,
            )
        else:
            self.ref(step.join_step, f"{path}.joinStep", step, "joinStep")
            join = self.ids.get(step.join_step or "")
            if join is not None and not isinstance(join, JoinGatewayStep):
                self.error(
                    "PARALLEL_HAS_JOIN",
                    f"{path}.joinStep",
                    f'parallel gateway "{sid}": joinStep "{join.id}" is a {join.type}, '
                    "not a JOIN_GATEWAY",
                    sid,
                )

    def check_boundary(self, step: Step, event: BoundaryEvent, path: str) -> None:
        sid = step.id
        if event.type != "TIMER":
            self.error(
                "BOUNDARY_TYPE",
                f"{path}.type",
                f'step "{sid}": boundary event type {event.type!r} is not TIMER',
                sid,
            )
        shown = event.duration if len(event.duration) <= 40 else event.duration[:37] + "..."
        try:
            duration = parse_duration(event.duration)
        except DurationError:
            self.error(
                "BOUNDARY_DURATION",
                f"{path}.duration",
                f'step "{sid}": boundary duration {shown!r} is not an ISO-8601 duration',
                sid,
            )
        else:
            if self.limits and not duration.within_limit:
                self.error(
                    "BOUNDARY_DURATION_RANGE",
                    f"{path}.duration",
                    f'step "{sid}": boundary duration {shown!r} is longer than '
                    f"{MAX_DURATION_DAYS} days (12 months counted as 366 days, a month as 31)",
                    sid,
                )
        if _blank(event.target_step_id) or event.target_step_id not in self.ids:
            self.error(
                "BOUNDARY_TARGET_RESOLVES",
                f"{path}.targetStepId",
                f'step "{sid}": boundary targetStepId "{event.target_step_id}" '
                "does not name a step",
                sid,
            )
        if not event.is_interrupting and event.target_step_id == sid:
            self.error(
                "BOUNDARY_SELF_TARGET",
                f"{path}.targetStepId",
                f'step "{sid}": a non-interrupting timer may not target its own step',
                sid,
            )

    # ----------------------------------------------------------------------------------------
    def check_decision_table(self, step: DecisionTableStep, path: str) -> None:
        sid = step.id

        def err(code: str, sub: str, message: str) -> None:
            self.error(code, f"{path}{sub}", f'decision table "{sid}": {message}', sid)

        if _blank(step.next_step):
            err("DECISION_TABLE_HAS_NEXT", ".nextStep", "nextStep is required")
        else:
            self.ref(step.next_step, f"{path}.nextStep", step, "nextStep")
        if step.boundary_events is not None:
            err("BOUNDARY_PARENT_SUPPORTS", ".boundaryEvents", "boundary events are not allowed")
        if step.hit_policy is not None and step.hit_policy not in HIT_POLICIES:
            err("DECISION_TABLE_HIT_POLICY", ".hitPolicy", f"unknown hitPolicy {step.hit_policy!r}")
        if step.aggregation is not None:
            if step.aggregation not in AGGREGATIONS:
                err(
                    "DECISION_TABLE_AGGREGATION",
                    ".aggregation",
                    f"unknown aggregation {step.aggregation!r}",
                )
            elif step.hit_policy != "C":
                err(
                    "DECISION_TABLE_AGGREGATION",
                    ".aggregation",
                    'aggregation requires hitPolicy "C"',
                )
        aggregation = aggregation_of(step) if step.hit_policy in HIT_POLICIES | {None} else None
        if aggregation not in AGGREGATIONS:
            aggregation = None
        if aggregation is not None and len(step.outputs) != 1:
            err(
                "DECISION_TABLE_AGGREGATION_SINGLE_OUTPUT",
                ".outputs",
                "an aggregating table needs exactly one output",
            )
        # inputs
        if not step.inputs:
            err("DECISION_TABLE_HAS_INPUTS", ".inputs", "at least one input is required")
        input_ids: set[str] = set()
        for j, inp in enumerate(step.inputs):
            if _blank(inp.expression):
                err("DECISION_TABLE_HAS_INPUTS", f".inputs[{j}].expression", "blank expression")
            else:
                self.expr_syntax(step, f"{path}.inputs[{j}].expression", inp.expression)
            if inp.id is not None:
                if inp.id in input_ids:
                    err("DECISION_TABLE_HAS_INPUTS", f".inputs[{j}].id", f"duplicate id {inp.id!r}")
                input_ids.add(inp.id)
        # outputs
        if not step.outputs:
            err("DECISION_TABLE_HAS_OUTPUTS", ".outputs", "at least one output is required")
        names: set[str] = set()
        uses_default = aggregation in ("SUM", "MIN", "MAX") or (
            aggregation is None and step.effective_hit_policy in ("U", "A", "F")
        )
        for j, out in enumerate(step.outputs):
            if _blank(out.name):
                err("DECISION_TABLE_HAS_OUTPUTS", f".outputs[{j}].name", "blank output name")
            elif out.name in names:
                err(
                    "DECISION_TABLE_HAS_OUTPUTS",
                    f".outputs[{j}].name",
                    f"duplicate output name {out.name!r}",
                )
            names.add(out.name)
            if out.has_default:
                self.value_syntax(step, f"{path}.outputs[{j}].defaultValue", out.default_value)
                if not uses_default:
                    self.warning(
                        "INAPPLICABLE_FIELD",
                        f"{path}.outputs[{j}].defaultValue",
                        f'decision table "{sid}": defaultValue is never used by this hit policy',
                        sid,
                    )
        # rules
        if not step.rules:
            err("DECISION_TABLE_HAS_RULES", ".rules", "at least one rule is required")
        rule_ids: set[str] = set()
        for r, rule in enumerate(step.rules):
            rpath = f".rules[{r}]"
            if rule.id is not None:
                if rule.id.startswith("#"):
                    err(
                        "DECISION_TABLE_HAS_RULES",
                        f"{rpath}.id",
                        "rule ids must not start with '#'",
                    )
                elif rule.id in rule_ids:
                    err("DECISION_TABLE_HAS_RULES", f"{rpath}.id", f"duplicate rule id {rule.id!r}")
                rule_ids.add(rule.id)
            if len(rule.input_entries) != len(step.inputs) or not all(
                isinstance(e, str) for e in rule.input_entries
            ):
                err(
                    "DECISION_TABLE_RULE_SHAPE",
                    f"{rpath}.inputEntries",
                    f"needs exactly {len(step.inputs)} string input entries",
                )
            if len(rule.output_entries) != len(step.outputs):
                err(
                    "DECISION_TABLE_RULE_SHAPE",
                    f"{rpath}.outputEntries",
                    f"needs exactly {len(step.outputs)} output entries",
                )
            for c, entry in enumerate(rule.input_entries):
                if isinstance(entry, str):
                    self.check_entry(step, f"{path}{rpath}.inputEntries[{c}]", entry)
            for c, value in enumerate(rule.output_entries):
                self.value_syntax(step, f"{path}{rpath}.outputEntries[{c}]", value)
            if aggregation in ("SUM", "MIN", "MAX"):
                self.check_aggregation_values(step, aggregation, rule.output_entries, path, r)

    def check_aggregation_values(
        self, step: DecisionTableStep, aggregation: str, entries: tuple[Any, ...], path: str, r: int
    ) -> None:
        literals = [
            (c, v)
            for c, v in enumerate(entries[:1])
            if not is_expression_string(v) and v is not None
        ]
        for c, value in literals:
            is_num = isinstance(value, int | float) and not isinstance(value, bool)
            ok = is_num if aggregation == "SUM" else is_num or isinstance(value, str)
            if not ok:
                self.error(
                    "DECISION_TABLE_AGGREGATION_VALUES",
                    f"{path}.rules[{r}].outputEntries[{c}]",
                    f'decision table "{step.id}": {aggregation} cannot aggregate {value!r}',
                    step.id,
                )
        if aggregation in ("MIN", "MAX") and r == len(step.rules) - 1:
            kinds = {
                "string" if isinstance(v, str) else "number"
                for rule in step.rules
                for v in rule.output_entries[:1]
                if v is not None
                and not is_expression_string(v)
                and (isinstance(v, str) or (isinstance(v, int | float) and not isinstance(v, bool)))
            }
            if len(kinds) > 1:
                self.error(
                    "DECISION_TABLE_AGGREGATION_VALUES",
                    f"{path}.rules",
                    f'decision table "{step.id}": {aggregation} mixes numbers and strings',
                    step.id,
                )

    def check_entry(self, step: DecisionTableStep, path: str, entry: str) -> None:
        try:
            tests = parse_input_entry(entry)
        except EntrySyntaxError as exc:
            self.error(
                "DECISION_TABLE_ENTRY_SYNTAX",
                path,
                f'decision table "{step.id}": {exc}',
                step.id,
            )
            return
        for interval in tests.intervals:
            if not interval.is_valid_range:
                self.error(
                    "DECISION_TABLE_ENTRY_RANGE",
                    path,
                    f'decision table "{step.id}": empty interval in {entry!r}',
                    step.id,
                )

    def expr_syntax(self, step: Step, path: str, source: str) -> None:
        try:
            compile_expression(source)
        except ExpressionSyntaxError as exc:
            self.expression_error(
                "DECISION_TABLE_EXPR_SYNTAX",
                path,
                f'decision table "{step.id}": expression',
                source,
                exc,
                step.id,
            )

    def value_syntax(self, step: Step, path: str, value: Any) -> None:
        try:
            compile_value(value)
        except ExpressionSyntaxError as exc:
            self.expression_error(
                "DECISION_TABLE_EXPR_SYNTAX",
                path,
                f'decision table "{step.id}": value',
                value,
                exc,
                step.id,
            )

    # ----------------------------------------------------------------------------------------
    def check_joins(self) -> None:
        owners: dict[str, int] = {}
        for step in self.definition.steps:
            if isinstance(step, ParallelGatewayStep) and step.join_step:
                owners[step.join_step] = owners.get(step.join_step, 0) + 1
        for index, step in enumerate(self.definition.steps):
            if isinstance(step, JoinGatewayStep) and not _blank(step.id):
                count = owners.get(step.id, 0)
                if count != 1:
                    self.error(
                        "JOIN_OWNED_ONCE",
                        f"$.steps[{index}]",
                        f'join "{step.id}" is the joinStep of {count} parallel gateways, not 1',
                        step.id,
                    )

    def forward_edges(self, step: Step) -> Iterator[str]:
        if isinstance(step, ServiceTaskStep | UserTaskStep | WaitStep):
            if step.next_step is not None:
                yield step.next_step
            for b in step.conditional_next_steps or ():
                yield b.target
        elif isinstance(step, DecisionStep):
            for b in step.conditional_next_steps or ():
                yield b.target
        elif isinstance(step, ParallelGatewayStep):
            yield from step.parallel_next_steps or ()
        elif isinstance(step, EndStep):
            return
        elif step.next_step is not None:
            yield step.next_step

    def boundary_edges(self, step: Step) -> Iterator[str]:
        if isinstance(step, ServiceTaskStep | UserTaskStep | WaitStep):
            for event in step.boundary_events or ():
                yield event.target_step_id

    def reach(self, starts: Iterable[str], *, boundary: bool, stop: str | None = None) -> set[str]:
        visited: set[str] = set()
        stack = [s for s in starts if s in self.ids]
        while stack:
            sid = stack.pop()
            if sid in visited:
                continue
            visited.add(sid)
            if sid == stop:
                continue
            step = self.ids[sid]
            nexts = list(self.forward_edges(step))
            if boundary:
                nexts.extend(self.boundary_edges(step))
            stack.extend(n for n in nexts if n in self.ids and n not in visited)
        return visited

    def check_graph(self) -> None:
        steps = self.definition.steps
        first = steps[0]
        if _blank(first.id):
            return
        visited = self.reach([first.id], boundary=True)
        for index, step in enumerate(steps):
            if not _blank(step.id) and step.id not in visited:
                self.error(
                    "ALL_REACHABLE",
                    f"$.steps[{index}]",
                    f'step "{step.id}" is not reachable from the first step "{first.id}"',
                    step.id,
                )
        if not any(isinstance(self.ids[s], EndStep) for s in visited):
            self.error("END_REACHABLE", "$.steps", "no END step is reachable from the first step")
        for index, step in enumerate(steps):
            if not isinstance(step, ParallelGatewayStep) or _blank(step.id):
                continue
            join = step.join_step
            for k, branch in enumerate(step.parallel_next_steps or ()):
                if branch not in self.ids:
                    continue
                region = self.reach([branch], boundary=False, stop=join)
                nested = sorted(s for s in region if isinstance(self.ids[s], ParallelGatewayStep))
                if nested:
                    self.error(
                        "NO_NESTED_PARALLEL",
                        f"$.steps[{index}].parallelNextSteps[{k}]",
                        f'parallel gateway "{step.id}": branch "{branch}" reaches parallel '
                        f'gateway "{nested[0]}" before the join',
                        step.id,
                    )
                if join is not None and join in self.ids and join not in region:
                    self.error(
                        "PARALLEL_BRANCH_REACHES_JOIN",
                        f"$.steps[{index}].parallelNextSteps[{k}]",
                        f'parallel gateway "{step.id}": branch "{branch}" never reaches join '
                        f'"{join}"',
                        step.id,
                    )
        cycle = self.find_cycle()
        if cycle is not None:
            self.warning(
                "GRAPH_CYCLE",
                "$.steps",
                "the graph contains a cycle: " + " -> ".join(cycle),
            )

    def find_cycle(self) -> list[str] | None:
        white, grey, black = 0, 1, 2
        color = dict.fromkeys(self.ids, white)
        for root in self.ids:
            if color[root] != white:
                continue
            stack: list[tuple[str, Iterator[str]]] = [(root, self.all_edges(root))]
            color[root] = grey
            while stack:
                node, edges = stack[-1]
                for nxt in edges:
                    if nxt not in color:
                        continue
                    if color[nxt] == grey:
                        path = [s for s, _ in stack]
                        return [*path[path.index(nxt) :], nxt]
                    if color[nxt] == white:
                        color[nxt] = grey
                        stack.append((nxt, self.all_edges(nxt)))
                        break
                else:
                    color[node] = black
                    stack.pop()
        return None

    def all_edges(self, sid: str) -> Iterator[str]:
        step = self.ids[sid]
        yield from self.forward_edges(step)
        yield from self.boundary_edges(step)


def run_rules(definition: WorkflowDefinition, *, limits: bool = True) -> list[ValidationIssue]:
    """Errors and warnings (``severity``) of a decoded definition.

    ``limits=False`` leaves out the limits of ``docs/validator.md`` section 7.
    """
    return _Checker(definition, limits=limits).run()


def _offset(written: object, exc: ExpressionSyntaxError) -> int:
    """The error's offset in the text as written (``exc`` may concern the inner ``${…}`` text)."""
    if isinstance(written, str):
        start = written.find(exc.source) if exc.source else -1
        if start > 0:
            return start + exc.position
    return exc.position
