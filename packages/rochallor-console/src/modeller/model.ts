// Pure edits of a workflow definition. Every function returns a new document and leaves its
// argument untouched; key order of untouched objects is kept, so an imported definition
// exports with the same content and order.
import type { BoundaryEvent, Step, StepType, WorkflowDefinition } from "../shared/definition";
import { STEP_TYPE_LABELS } from "../shared/definition";
import type { EdgeKind } from "../shared/graph";

export function emptyDefinition(): WorkflowDefinition {
  return { id: "DOMAIN::new-workflow", name: "New workflow", steps: [] };
}

function slug(type: string): string {
  return type.toLowerCase().replace(/_/g, "-");
}

export function uniqueStepId(definition: WorkflowDefinition, base: string): string {
  const taken = new Set(definition.steps.map((s) => s.id));
  for (let n = 1; ; n++) {
    const id = `${base}-${n}`;
    if (!taken.has(id)) return id;
  }
}

/** A new step of the type with its required fields present (empty where the user must choose). */
export function newStep(definition: WorkflowDefinition, type: StepType): Step {
  const id = uniqueStepId(definition, slug(type));
  const name = `${STEP_TYPE_LABELS[type]} ${id.split("-").pop()}`;
  const step: Step = { id, name, type };
  switch (type) {
    case "SERVICE_TASK":
      step.jobType = "";
      break;
    case "DECISION":
      step.conditionalNextSteps = {};
      break;
    case "TRANSFORMATION":
      step.transformations = {};
      step.nextStep = "";
      break;
    case "WAIT":
    case "JOIN_GATEWAY":
      step.nextStep = "";
      break;
    case "PARALLEL_GATEWAY":
      step.parallelNextSteps = [];
      step.joinStep = "";
      break;
    case "DECISION_TABLE":
      step.hitPolicy = "U";
      step.inputs = [{ expression: "" }];
      step.outputs = [{ name: "" }];
      step.rules = [{ inputEntries: ["-"], outputEntries: [null] }];
      step.nextStep = "";
      break;
    default:
      break;
  }
  return step;
}

function mapSteps(definition: WorkflowDefinition, fn: (step: Step) => Step): WorkflowDefinition {
  return { ...definition, steps: definition.steps.map(fn) };
}

export function addStep(definition: WorkflowDefinition, step: Step): WorkflowDefinition {
  return { ...definition, steps: [...definition.steps, step] };
}

export function findStep(definition: WorkflowDefinition, id: string): Step | undefined {
  return definition.steps.find((s) => s.id === id);
}

/** Replace fields of one step; a value of `undefined` removes the field. */
export function updateStep(definition: WorkflowDefinition, id: string, patch: Partial<Step>): WorkflowDefinition {
  return mapSteps(definition, (step) => {
    if (step.id !== id) return step;
    const next: Step = { ...step };
    for (const [key, value] of Object.entries(patch)) {
      if (value === undefined) delete next[key];
      else next[key] = value;
    }
    return next;
  });
}

/** Replace top-level fields; `undefined` removes the field. */
export function updateDefinition(definition: WorkflowDefinition, patch: Partial<WorkflowDefinition>): WorkflowDefinition {
  const next: WorkflowDefinition = { ...definition };
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined) delete next[key];
    else next[key] = value;
  }
  return next;
}

/** Entries of conditionalNextSteps in written order. */
export function conditions(step: Step): [string, string][] {
  return Object.entries(step.conditionalNextSteps ?? {});
}

function fromEntries(entries: [string, string][]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of entries) out[k] = v;
  return out;
}

/** A condition text not yet used on the step. */
export function freshCondition(step: Step): string {
  const taken = new Set(Object.keys(step.conditionalNextSteps ?? {}));
  for (const text of ["true", "false"]) if (!taken.has(text)) return text;
  for (let n = 3; ; n++) {
    const text = `condition${n} == true`;
    if (!taken.has(text)) return text;
  }
}

/**
 * Connect `source` to `target` the way the source's type routes:
 * DECISION adds a condition, PARALLEL_GATEWAY a branch (or sets its join when the target is a
 * JOIN_GATEWAY and none is set), every other type sets `nextStep`. END has no successor.
 */
export function connect(definition: WorkflowDefinition, source: string, target: string): WorkflowDefinition {
  const from = findStep(definition, source);
  const to = findStep(definition, target);
  if (!from || !to || from.type === "END") return definition;
  switch (from.type) {
    case "DECISION": {
      const entries = conditions(from);
      return updateStep(definition, source, {
        conditionalNextSteps: fromEntries([...entries, [freshCondition(from), target]]),
      });
    }
    case "PARALLEL_GATEWAY": {
      if (to.type === "JOIN_GATEWAY" && !from.joinStep) {
        return updateStep(definition, source, { joinStep: target });
      }
      const branches = from.parallelNextSteps ?? [];
      if (branches.includes(target)) return definition;
      return updateStep(definition, source, { parallelNextSteps: [...branches, target] });
    }
    default:
      return updateStep(definition, source, { nextStep: target });
  }
}

/** Parse an edge id of `definitionToGraph` back into its source field. */
export function parseEdgeId(id: string): { source: string; kind: EdgeKind | "timer-any"; index: number } | null {
  const match = /^(.*):(next|cond|par|timer)(?::(\d+))?$/.exec(id);
  if (!match) return null;
  const kinds: Record<string, EdgeKind | "timer-any"> = { next: "next", cond: "condition", par: "parallel", timer: "timer-any" };
  return { source: match[1], kind: kinds[match[2]], index: match[3] ? Number(match[3]) : 0 };
}

/** Remove the reference an edge stands for. */
export function removeEdge(definition: WorkflowDefinition, edgeId: string): WorkflowDefinition {
  const parsed = parseEdgeId(edgeId);
  if (!parsed) return definition;
  const step = findStep(definition, parsed.source);
  if (!step) return definition;
  switch (parsed.kind) {
    case "next":
      return updateStep(definition, step.id, { nextStep: step.type === "SERVICE_TASK" || step.type === "USER_TASK" ? undefined : "" });
    case "condition":
      return updateStep(definition, step.id, {
        conditionalNextSteps: fromEntries(conditions(step).filter((_, i) => i !== parsed.index)),
      });
    case "parallel":
      return updateStep(definition, step.id, {
        parallelNextSteps: (step.parallelNextSteps ?? []).filter((_, i) => i !== parsed.index),
      });
    default:
      return updateStep(definition, step.id, {
        boundaryEvents: (step.boundaryEvents ?? []).filter((_, i) => i !== parsed.index),
      });
  }
}

/** Point an existing edge at another target. */
export function retargetEdge(definition: WorkflowDefinition, edgeId: string, target: string): WorkflowDefinition {
  const parsed = parseEdgeId(edgeId);
  if (!parsed) return definition;
  const step = findStep(definition, parsed.source);
  if (!step) return definition;
  switch (parsed.kind) {
    case "next":
      return updateStep(definition, step.id, { nextStep: target });
    case "condition":
      return updateStep(definition, step.id, {
        conditionalNextSteps: fromEntries(conditions(step).map(([k, v], i) => [k, i === parsed.index ? target : v])),
      });
    case "parallel":
      return updateStep(definition, step.id, {
        parallelNextSteps: (step.parallelNextSteps ?? []).map((v, i) => (i === parsed.index ? target : v)),
      });
    default:
      return updateStep(definition, step.id, {
        boundaryEvents: (step.boundaryEvents ?? []).map((e, i) => (i === parsed.index ? { ...e, targetStepId: target } : e)),
      });
  }
}

function replaceRefs(step: Step, from: string, to: string | null): Step {
  const next: Step = { ...step };
  if (step.nextStep === from) {
    if (to === null) {
      if (step.type === "SERVICE_TASK" || step.type === "USER_TASK") delete next.nextStep;
      else next.nextStep = "";
    } else next.nextStep = to;
  }
  if (step.joinStep === from) next.joinStep = to ?? "";
  if (step.conditionalNextSteps) {
    const entries = conditions(step);
    if (entries.some(([, v]) => v === from)) {
      next.conditionalNextSteps = fromEntries(
        to === null ? entries.filter(([, v]) => v !== from) : entries.map(([k, v]) => [k, v === from ? to : v]),
      );
    }
  }
  if (step.parallelNextSteps?.includes(from)) {
    next.parallelNextSteps =
      to === null ? step.parallelNextSteps.filter((v) => v !== from) : step.parallelNextSteps.map((v) => (v === from ? to : v));
  }
  if (step.boundaryEvents?.some((e) => e.targetStepId === from)) {
    next.boundaryEvents =
      to === null
        ? step.boundaryEvents.filter((e) => e.targetStepId !== from)
        : step.boundaryEvents.map((e) => (e.targetStepId === from ? { ...e, targetStepId: to } : e));
  }
  return next;
}

/** Delete a step and every reference to it (edges into it disappear). */
export function deleteStep(definition: WorkflowDefinition, id: string): WorkflowDefinition {
  return {
    ...definition,
    steps: definition.steps.filter((s) => s.id !== id).map((s) => replaceRefs(s, id, null)),
  };
}

/** Rename a step id and every reference to it. Refused (unchanged) when `to` is blank or taken. */
export function renameStep(definition: WorkflowDefinition, from: string, to: string): WorkflowDefinition {
  if (from === to || !to.trim() || definition.steps.some((s) => s.id === to)) return definition;
  return {
    ...definition,
    steps: definition.steps.map((s) => replaceRefs(s.id === from ? { ...s, id: to } : s, from, to)),
  };
}

/** Move a condition up (-1) or down (+1): order decides which branch is taken. */
export function moveCondition(definition: WorkflowDefinition, stepId: string, index: number, delta: number): WorkflowDefinition {
  const step = findStep(definition, stepId);
  if (!step) return definition;
  const entries = conditions(step);
  const to = index + delta;
  if (to < 0 || to >= entries.length) return definition;
  [entries[index], entries[to]] = [entries[to], entries[index]];
  return updateStep(definition, stepId, { conditionalNextSteps: fromEntries(entries) });
}

/** Replace condition `index` (text and target). Refused when the text is used by another entry. */
export function setCondition(
  definition: WorkflowDefinition,
  stepId: string,
  index: number,
  expression: string,
  target: string,
): WorkflowDefinition {
  const step = findStep(definition, stepId);
  if (!step) return definition;
  const entries = conditions(step);
  if (entries.some(([k], i) => i !== index && k === expression)) return definition;
  entries[index] = [expression, target];
  return updateStep(definition, stepId, { conditionalNextSteps: fromEntries(entries) });
}

export function addCondition(definition: WorkflowDefinition, stepId: string, target = ""): WorkflowDefinition {
  const step = findStep(definition, stepId);
  if (!step) return definition;
  return updateStep(definition, stepId, {
    conditionalNextSteps: fromEntries([...conditions(step), [freshCondition(step), target]]),
  });
}

export function removeCondition(definition: WorkflowDefinition, stepId: string, index: number): WorkflowDefinition {
  const step = findStep(definition, stepId);
  if (!step) return definition;
  const entries = conditions(step).filter((_, i) => i !== index);
  // An inline routing map that becomes empty is removed (an empty one is an error on tasks).
  const keep = entries.length > 0 || step.type === "DECISION";
  return updateStep(definition, stepId, { conditionalNextSteps: keep ? fromEntries(entries) : undefined });
}

export function addBoundaryEvent(definition: WorkflowDefinition, stepId: string, event: BoundaryEvent): WorkflowDefinition {
  const step = findStep(definition, stepId);
  if (!step) return definition;
  return updateStep(definition, stepId, { boundaryEvents: [...(step.boundaryEvents ?? []), event] });
}

/** Make a step the entry step (first in `steps`). */
export function makeEntry(definition: WorkflowDefinition, id: string): WorkflowDefinition {
  const step = findStep(definition, id);
  if (!step) return definition;
  return { ...definition, steps: [step, ...definition.steps.filter((s) => s.id !== id)] };
}

/** The document as exported: two-space JSON with a final newline. */
export function toJson(definition: WorkflowDefinition): string {
  return JSON.stringify(definition, null, 2) + "\n";
}

/** What the canvas has selected: one step, one edge, or nothing. */
export type Selection = { kind: "step"; id: string } | { kind: "edge"; id: string } | null;

export type ParseResult = { ok: true; definition: WorkflowDefinition } | { ok: false; message: string; position?: number };

/** Parse JSON text typed or imported by the user; only the shape the canvas needs is required. */
export function parseJson(text: string): ParseResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const match = /position (\d+)/.exec(message);
    return { ok: false, message, position: match ? Number(match[1]) : undefined };
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    return { ok: false, message: "a definition is a JSON object" };
  }
  const definition = value as WorkflowDefinition;
  if (!Array.isArray(definition.steps)) {
    return { ok: false, message: "the definition needs a \"steps\" array to be drawn" };
  }
  if (definition.steps.some((s) => !s || typeof s !== "object" || typeof s.id !== "string")) {
    return { ok: false, message: "every step needs a string \"id\" to be drawn" };
  }
  return { ok: true, definition };
}
