// Where a validator issue belongs on the canvas, from its path (`$.steps[2].conditionalNextSteps[1].condition`).
// The rules themselves are never repeated here: the server's validator decides, this only locates.
import type { Issue } from "../shared/api";
import type { WorkflowDefinition } from "../shared/definition";
import { edgeId } from "../shared/graph";

export interface IssueLocation {
  stepId?: string;
  edgeId?: string;
  /** First field below the step (or the top-level field): "jobType", "conditionalNextSteps", "name"… */
  field?: string;
  /** Index within a list field (condition, branch, timer, rule…). */
  index?: number;
  /** Remaining path below the field, e.g. ".condition", ".duration", "x". */
  rest?: string;
}

const STEP_PATH = /^\$\.steps\[(\d+)\](?:\.([A-Za-z]+))?(?:\[(\d+)\])?(.*)$/;
const TOP_PATH = /^\$(?:\.([A-Za-z]+))?/;

export function locateIssue(definition: WorkflowDefinition, issue: Issue): IssueLocation {
  const match = STEP_PATH.exec(issue.path);
  if (!match) {
    const top = TOP_PATH.exec(issue.path);
    const stepId = issue.stepId ?? undefined;
    return { field: top?.[1], stepId: stepId && definition.steps.some((s) => s.id === stepId) ? stepId : undefined };
  }
  const step = definition.steps[Number(match[1])];
  const stepId = step && typeof step.id === "string" ? step.id : (issue.stepId ?? undefined);
  const field = match[2];
  const index = match[3] === undefined ? undefined : Number(match[3]);
  const rest = match[4] ? match[4].replace(/^\./, "") : undefined;
  const location: IssueLocation = { stepId, field, index, rest };
  if (stepId) {
    if (field === "nextStep") location.edgeId = edgeId(stepId, "next");
    else if (field === "conditionalNextSteps" && index !== undefined) location.edgeId = edgeId(stepId, "condition", index);
    else if (field === "parallelNextSteps" && index !== undefined) location.edgeId = edgeId(stepId, "parallel", index);
    else if (field === "boundaryEvents" && index !== undefined) location.edgeId = edgeId(stepId, "timer", index);
  }
  return location;
}

export interface LocatedIssue extends Issue {
  location: IssueLocation;
}

export function locateAll(definition: WorkflowDefinition, issues: Issue[]): LocatedIssue[] {
  return issues.map((issue) => ({ ...issue, location: locateIssue(definition, issue) }));
}

/** Per step: worst severity and number of issues. */
export function issuesByStep(issues: LocatedIssue[]): Record<string, { severity: "error" | "warning"; count: number }> {
  const out: Record<string, { severity: "error" | "warning"; count: number }> = {};
  for (const issue of issues) {
    const id = issue.location.stepId;
    if (!id) continue;
    const severity = issue.severity === "warning" ? "warning" : "error";
    const seen = out[id];
    if (!seen) out[id] = { severity, count: 1 };
    else out[id] = { severity: seen.severity === "error" || severity === "error" ? "error" : "warning", count: seen.count + 1 };
  }
  return out;
}

export function edgesWithIssues(issues: LocatedIssue[]): Set<string> {
  return new Set(issues.filter((i) => i.severity !== "warning" && i.location.edgeId).map((i) => i.location.edgeId!));
}

/** Issues of one step's field (and list index, when given). */
export function fieldIssues(issues: LocatedIssue[], stepId: string | undefined, field: string, index?: number): LocatedIssue[] {
  return issues.filter(
    (i) =>
      i.location.stepId === stepId &&
      i.location.field === field &&
      (index === undefined || i.location.index === index),
  );
}
