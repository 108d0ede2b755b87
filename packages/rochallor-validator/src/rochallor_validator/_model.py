"""Typed model of a workflow definition and its JSON (wire) form.

Attributes are snake_case; the wire form uses the camelCase names of workflow-format.md.
Fields that a step type does not use (``.`` in section 2.2) are accepted, kept verbatim in
``ignored_fields`` and written back on output, so uploads round-trip. Optional fields that were
absent are ``None`` (or the ``NO_DEFAULT`` sentinel for ``defaultValue``) and omitted on output.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final, TypeAlias

import attrs
import cattrs
from cattrs.errors import IterableValidationError, IterableValidationNote
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from rochallor_validator._duration import IsoDuration, parse_duration


class StepType(enum.StrEnum):
    SERVICE_TASK = "SERVICE_TASK"
    USER_TASK = "USER_TASK"
    DECISION = "DECISION"
    TRANSFORMATION = "TRANSFORMATION"
    WAIT = "WAIT"
    PARALLEL_GATEWAY = "PARALLEL_GATEWAY"
    JOIN_GATEWAY = "JOIN_GATEWAY"
    END = "END"
    DECISION_TABLE = "DECISION_TABLE"


class _NoDefault(enum.Enum):
    NO_DEFAULT = "NO_DEFAULT"

    def __repr__(self) -> str:
        return "NO_DEFAULT"


#: ``DecisionTableOutput.default_value`` when the output declares no ``defaultValue``.
NO_DEFAULT: Final = _NoDefault.NO_DEFAULT


@attrs.frozen(kw_only=True)
class BoundaryEvent:
    """A boundary timer (workflow-format.md section 3)."""

    type: str
    duration: str
    target_step_id: str
    interrupting: bool | None = None

    @property
    def is_interrupting(self) -> bool:
        return bool(self.interrupting)

    @property
    def parsed_duration(self) -> IsoDuration:
        """The parsed duration; raises ``DurationError`` if invalid (never, once validated)."""
        return parse_duration(self.duration)


@attrs.frozen(kw_only=True)
class ConditionalNextStep:
    """One ``conditionalNextSteps`` entry, ``{condition: target}``; kept in written order."""

    condition: str
    target: str


@attrs.frozen(kw_only=True)
class Transformation:
    """One ``transformations`` entry, ``{variable: value}``; kept in written order."""

    variable: str
    value: Any = attrs.field(hash=False)


@attrs.frozen(kw_only=True)
class DecisionTableInput:
    expression: str
    id: str | None = None
    label: str | None = None


@attrs.frozen(kw_only=True)
class DecisionTableOutput:
    name: str
    label: str | None = None
    default_value: Any = attrs.field(default=NO_DEFAULT, hash=False)

    @property
    def has_default(self) -> bool:
        return self.default_value is not NO_DEFAULT


@attrs.frozen(kw_only=True)
class DecisionTableRule:
    id: str | None = None
    description: str | None = None
    input_entries: tuple[Any, ...] = ()
    output_entries: tuple[Any, ...] = attrs.field(default=(), hash=False)


def _ignored_field() -> Any:
    return attrs.field(factory=dict, hash=False, eq=True, repr=False)


@attrs.frozen(kw_only=True)
class _StepBase:
    type: ClassVar[StepType]
    #: Wire names of optional fields this type uses (besides id, name, type, description).
    id: str
    name: str
    description: str | None = None
    #: Known step fields this type does not use (wire name -> JSON value), kept for round-trip.
    ignored_fields: Mapping[str, Any] = _ignored_field()


@attrs.frozen(kw_only=True)
class ServiceTaskStep(_StepBase):
    type: ClassVar[StepType] = StepType.SERVICE_TASK
    job_type: str | None = None
    retry_count: int | None = None
    delegate_class: str | None = None
    next_step: str | None = None
    conditional_next_steps: tuple[ConditionalNextStep, ...] | None = None
    boundary_events: tuple[BoundaryEvent, ...] | None = None


@attrs.frozen(kw_only=True)
class UserTaskStep(_StepBase):
    type: ClassVar[StepType] = StepType.USER_TASK
    job_type: str | None = None
    next_step: str | None = None
    conditional_next_steps: tuple[ConditionalNextStep, ...] | None = None
    boundary_events: tuple[BoundaryEvent, ...] | None = None


@attrs.frozen(kw_only=True)
class DecisionStep(_StepBase):
    type: ClassVar[StepType] = StepType.DECISION
    conditional_next_steps: tuple[ConditionalNextStep, ...] | None = None


@attrs.frozen(kw_only=True)
class TransformationStep(_StepBase):
    type: ClassVar[StepType] = StepType.TRANSFORMATION
    transformations: tuple[Transformation, ...] | None = None
    next_step: str | None = None


@attrs.frozen(kw_only=True)
class WaitStep(_StepBase):
    type: ClassVar[StepType] = StepType.WAIT
    next_step: str | None = None
    conditional_next_steps: tuple[ConditionalNextStep, ...] | None = None
    boundary_events: tuple[BoundaryEvent, ...] | None = None


@attrs.frozen(kw_only=True)
class ParallelGatewayStep(_StepBase):
    type: ClassVar[StepType] = StepType.PARALLEL_GATEWAY
    parallel_next_steps: tuple[str, ...] | None = None
    join_step: str | None = None


@attrs.frozen(kw_only=True)
class JoinGatewayStep(_StepBase):
    type: ClassVar[StepType] = StepType.JOIN_GATEWAY
    next_step: str | None = None


@attrs.frozen(kw_only=True)
class EndStep(_StepBase):
    type: ClassVar[StepType] = StepType.END


@attrs.frozen(kw_only=True)
class DecisionTableStep(_StepBase):
    type: ClassVar[StepType] = StepType.DECISION_TABLE
    hit_policy: str | None = None
    aggregation: str | None = None
    inputs: tuple[DecisionTableInput, ...] = ()
    outputs: tuple[DecisionTableOutput, ...] = ()
    rules: tuple[DecisionTableRule, ...] = ()
    next_step: str | None = None
    # ``boundaryEvents`` is never allowed here; kept only so the violation can be reported.
    boundary_events: tuple[BoundaryEvent, ...] | None = None

    @property
    def effective_hit_policy(self) -> str:
        return self.hit_policy or "U"


Step: TypeAlias = (
    ServiceTaskStep
    | UserTaskStep
    | DecisionStep
    | TransformationStep
    | WaitStep
    | ParallelGatewayStep
    | JoinGatewayStep
    | EndStep
    | DecisionTableStep
)

STEP_CLASSES: Final[Mapping[StepType, type[Step]]] = {
    cls.type: cls
    for cls in (
        ServiceTaskStep,
        UserTaskStep,
        DecisionStep,
        TransformationStep,
        WaitStep,
        ParallelGatewayStep,
        JoinGatewayStep,
        EndStep,
        DecisionTableStep,
    )
}


@attrs.frozen(kw_only=True)
class WorkflowDefinition:
    id: str
    name: str
    steps: tuple[Step, ...]
    description: str | None = None
    version: int | None = None
    auto_start_next_workflow: bool | None = None
    next_workflow_id: str | None = None
    metadata: Mapping[str, Any] | None = attrs.field(default=None, hash=False)

    def step(self, step_id: str) -> Step | None:
        """The step with this id, or None."""
        for s in self.steps:
            if s.id == step_id:
                return s
        return None


# --------------------------------------------------------------------------------------------
# Wire form


def to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


#: JSON type expected for every known step field (used for fields the step type ignores).
_STEP_FIELD_JSON: Final[Mapping[str, Any]] = {
    "nextStep": str,
    "conditionalNextSteps": "str-map",
    "jobType": str,
    "delegateClass": str,
    "retryCount": int,
    "transformations": dict,
    "parallelNextSteps": "str-list",
    "joinStep": str,
    "boundaryEvents": list,
    "hitPolicy": str,
    "aggregation": str,
    "inputs": list,
    "outputs": list,
    "rules": list,
}
_JSON_TYPE_LABELS: Final[Mapping[Any, str]] = {
    str: "string",
    int: "integer",
    dict: "object",
    list: "array",
    "str-list": "array of strings",
    "str-map": "object with string values",
}
_COMMON_STEP_KEYS: Final = frozenset({"id", "name", "type", "description"})


class WireError(Exception):
    """A structural problem found by a structure hook; ``segments`` is relative to the hook."""

    def __init__(self, code: str, message: str, segments: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.segments = segments


def _json_type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _wrong_type(expected: str, value: Any, *segments: str | int) -> WireError:
    return WireError(
        "INVALID_TYPE", f"expected {expected}, got {_json_type_name(value)}", tuple(segments)
    )


def _check_json_type(expected: Any, value: Any, key: str) -> None:
    ok: bool
    if expected is str:
        ok = isinstance(value, str)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is dict:
        ok = isinstance(value, dict)
    elif expected is list:
        ok = isinstance(value, list)
    elif expected == "str-list":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:
        ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    if not ok:
        raise _wrong_type(_JSON_TYPE_LABELS[expected], value, key)


def _required(data: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """Copy of ``data`` without ``null`` values and with missing required strings set to "".

    Missing required fields are not decoding errors: the validation rules report them with
    their own codes (``NAME_REQUIRED``, ``STEP_ID_REQUIRED``, ...).
    """
    out = {k: v for k, v in data.items() if v is not None}
    for key in keys:
        out.setdefault(key, "")
    return out


def make_converter() -> cattrs.Converter:
    """Build the package's one converter (all hooks, wire names, unknown keys forbidden)."""
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)

    # Strict scalars: no implicit str()/int() conversions (rule P3).
    def structure_str(value: Any, _: Any) -> str:
        if not isinstance(value, str):
            raise _wrong_type("string", value)
        return value

    def structure_int(value: Any, _: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _wrong_type("integer", value)
        return value

    def structure_bool(value: Any, _: Any) -> bool:
        if not isinstance(value, bool):
            raise _wrong_type("boolean", value)
        return value

    conv.register_structure_hook(str, structure_str)
    conv.register_structure_hook(int, structure_int)
    conv.register_structure_hook(bool, structure_bool)
    conv.register_structure_hook(Any, lambda value, _: value)

    def is_homogeneous_tuple(t: Any) -> bool:
        return getattr(t, "__origin__", None) is tuple and len(t.__args__) == 2

    def tuple_hook_factory(t: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
        elem = t.__args__[0]

        def structure_tuple(value: Any, _: Any) -> tuple[Any, ...]:
            if not isinstance(value, list):
                raise _wrong_type("array", value)
            if elem is Any:
                return tuple(value)
            items: list[Any] = []
            errors: list[Exception] = []
            for index, item in enumerate(value):
                try:
                    items.append(conv.structure(item, elem))
                except Exception as exc:
                    exc.__notes__ = [
                        *getattr(exc, "__notes__", []),
                        IterableValidationNote(f"@ index {index}", index, elem),
                    ]
                    errors.append(exc)
            if errors:
                raise IterableValidationError("while structuring array", errors, t)
            return tuple(items)

        return structure_tuple

    conv.register_structure_hook_factory(is_homogeneous_tuple, tuple_hook_factory)
    conv.register_unstructure_hook_factory(
        is_homogeneous_tuple, lambda _: lambda v: [conv.unstructure(x) for x in v]
    )

    def structure_conditionals(value: Any, _: Any) -> tuple[ConditionalNextStep, ...]:
        if not isinstance(value, dict):
            raise _wrong_type("object", value)
        for index, target in enumerate(value.values()):
            if not isinstance(target, str):
                raise _wrong_type("string", target, index, "target")
        return tuple(ConditionalNextStep(condition=k, target=v) for k, v in value.items())

    def structure_transformations(value: Any, _: Any) -> tuple[Transformation, ...]:
        if not isinstance(value, dict):
            raise _wrong_type("object", value)
        return tuple(Transformation(variable=k, value=v) for k, v in value.items())

    def structure_metadata(value: Any, _: Any) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise _wrong_type("object", value)
        return value

    conditionals_t: Any = tuple[ConditionalNextStep, ...]
    transformations_t: Any = tuple[Transformation, ...]
    conv.register_structure_hook_func(lambda t: t == conditionals_t, structure_conditionals)
    conv.register_structure_hook_func(lambda t: t == transformations_t, structure_transformations)
    conv.register_structure_hook_func(lambda t: t == Mapping[str, Any], structure_metadata)
    conv.register_unstructure_hook_func(
        lambda t: t == conditionals_t, lambda v: {c.condition: c.target for c in v}
    )
    conv.register_unstructure_hook_func(
        lambda t: t == transformations_t, lambda v: {t.variable: t.value for t in v}
    )

    def renames(cls: type, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for a in attrs.fields(cls):
            if a.name in skip:
                out[a.name] = override(omit=True)
            else:
                out[a.name] = override(rename=to_camel(a.name))
        return out

    def register_class(cls: type, required: tuple[str, ...], skip: tuple[str, ...] = ()) -> None:
        structure: Callable[[Mapping[str, Any], Any], Any] = make_dict_structure_fn(
            cls, conv, **renames(cls, skip=skip)
        )
        unstructure: Callable[[Any], dict[str, Any]] = make_dict_unstructure_fn(
            cls, conv, _cattrs_omit_if_default=True, **renames(cls, skip=skip)
        )

        def structure_object(value: Any, _: Any) -> Any:
            if not isinstance(value, dict):
                raise _wrong_type("object", value)
            data = _required(value, *required)
            if cls is DecisionTableOutput and "defaultValue" in value:
                data["defaultValue"] = value["defaultValue"]  # null is a declared default
            return structure(data, cls)

        conv.register_structure_hook(cls, structure_object)
        conv.register_unstructure_hook(cls, unstructure)

    register_class(BoundaryEvent, ("type", "duration", "targetStepId"))
    register_class(DecisionTableInput, ("expression",))
    register_class(DecisionTableOutput, ("name",))
    register_class(DecisionTableRule, ())

    step_structure: dict[type, Callable[[Mapping[str, Any], Any], Any]] = {}
    step_unstructure: dict[type, Callable[[Any], dict[str, Any]]] = {}
    step_keys: dict[type, frozenset[str]] = {}
    for cls in STEP_CLASSES.values():
        step_structure[cls] = make_dict_structure_fn(
            cls, conv, **renames(cls, skip=("ignored_fields",))
        )
        step_unstructure[cls] = make_dict_unstructure_fn(
            cls, conv, _cattrs_omit_if_default=True, **renames(cls, skip=("ignored_fields",))
        )
        step_keys[cls] = frozenset(
            to_camel(a.name) for a in attrs.fields(cls) if a.name != "ignored_fields"
        )

    def structure_step(value: Any, _: Any) -> Step:
        if not isinstance(value, dict):
            raise _wrong_type("object", value)
        raw_type = value.get("type")
        if not isinstance(raw_type, str) or raw_type not in StepType.__members__:
            shown = "missing" if raw_type is None else f"{raw_type!r} is not a step type"
            raise WireError("STEP_TYPE_VALID", f"step type {shown}", ("type",))
        cls = STEP_CLASSES[StepType(raw_type)]
        data = _required(value, "id", "name")
        data.pop("type")
        ignored: dict[str, Any] = {}
        errors: list[Exception] = []
        for key in list(data):
            if key in step_keys[cls] or key in _COMMON_STEP_KEYS:
                continue
            expected = _STEP_FIELD_JSON.get(key)
            if expected is None:
                continue  # unknown: reported by the generated hook (forbid_extra_keys)
            try:
                _check_json_type(expected, data[key], key)
            except WireError as exc:
                errors.append(exc)
            ignored[key] = value[key]
            del data[key]
        try:
            step: Step = step_structure[cls](data, cls)
        except cattrs.ClassValidationError as exc:
            raise cattrs.ClassValidationError(
                exc.message, [*exc.exceptions, *errors], cls
            ) from None
        if errors:
            raise cattrs.ClassValidationError("invalid step", errors, cls)
        return attrs.evolve(step, ignored_fields=ignored) if ignored else step

    def unstructure_step(step: Step) -> dict[str, Any]:
        body = step_unstructure[type(step)](step)
        out: dict[str, Any] = {"id": body.pop("id"), "name": body.pop("name")}
        out["type"] = str(step.type)
        out.update(body)
        out.update(step.ignored_fields)
        return out

    conv.register_structure_hook(Step, structure_step)
    for cls in STEP_CLASSES.values():
        conv.register_unstructure_hook(cls, unstructure_step)

    def_structure = make_dict_structure_fn(WorkflowDefinition, conv, **renames(WorkflowDefinition))
    def_unstructure = make_dict_unstructure_fn(
        WorkflowDefinition, conv, _cattrs_omit_if_default=True, **renames(WorkflowDefinition)
    )

    def structure_definition(value: Any, _: Any) -> WorkflowDefinition:
        if not isinstance(value, dict):
            raise _wrong_type("object", value)
        data = _required(value, "id", "name")
        data.setdefault("steps", [])
        return def_structure(data, WorkflowDefinition)

    def unstructure_definition(definition: WorkflowDefinition) -> dict[str, Any]:
        body = def_unstructure(definition)
        del body["steps"]
        body["steps"] = [unstructure_step(s) for s in definition.steps]
        return body

    conv.register_structure_hook(WorkflowDefinition, structure_definition)
    conv.register_unstructure_hook(WorkflowDefinition, unstructure_definition)
    return conv


CONVERTER: Final = make_converter()
