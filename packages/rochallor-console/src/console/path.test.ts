import { describe, expect, it } from "vitest";
import { definitionToGraph } from "../shared/graph";
import type { WorkflowDefinition } from "../shared/definition";
import type { AuditEntry, StepExecution } from "./api";
import { decorate, formatDuration, summarise } from "./path";

const definition = {
  id: "d",
  name: "D",
  steps: [
    {
      id: "task",
      name: "Task",
      type: "SERVICE_TASK",
      jobType: "t",
      nextStep: "route",
      boundaryEvents: [{ type: "TIMER", duration: "PT1S", interrupting: false, targetStepId: "late" }],
    },
    { id: "route", name: "Route", type: "DECISION", conditionalNextSteps: { "x > 1": "big", "x <= 1": "end" } },
    { id: "big", name: "Big", type: "SERVICE_TASK", jobType: "b", nextStep: "end" },
    { id: "late", name: "Late", type: "SERVICE_TASK", jobType: "l" },
    { id: "end", name: "End", type: "END" },
  ],
} as unknown as WorkflowDefinition;

function run(stepId: string, status: string, startedAt: string, endedAt: string | null, attempt = 1): StepExecution {
  return { id: `${stepId}-${attempt}`, instanceId: "i", stepId, stepType: "X", attemptNumber: attempt, status, startedAt, endedAt, failureReason: null };
}

describe("decorate", () => {
  const history = [
    run("task", "FAILED", "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"),
    run("task", "COMPLETED", "2026-01-01T00:00:02Z", "2026-01-01T00:00:03Z", 2),
    run("late", "RUNNING", "2026-01-01T00:00:02.5Z", null),
    run("route", "COMPLETED", "2026-01-01T00:00:03Z", "2026-01-01T00:00:03Z"),
    run("big", "RUNNING", "2026-01-01T00:00:03Z", null),
  ];
  const audit: AuditEntry[] = [
    { id: 1, at: "2026-01-01T00:00:02.5Z", actor: "engine", kind: "timer-fired", detail: { target: "late", interrupting: false } },
  ];

  it("badges steps with their latest status and entries, and marks the path taken", () => {
    const decorations = decorate(definitionToGraph(definition), history, audit, ["big", "late"]);
    expect(decorations.status).toEqual({ task: "COMPLETED ×2", late: "RUNNING", route: "COMPLETED", big: "RUNNING" });
    expect(decorations.edgeHighlights).toEqual({ "task:next": "taken", "route:cond:0": "taken", "task:timer:0": "fired" });
  });

  it("summarises entries per step", () => {
    expect(summarise(history).task).toEqual({ status: "COMPLETED", entries: 2 });
  });
});

describe("formatDuration", () => {
  it("reads well at every scale", () => {
    expect(formatDuration(null)).toBe("running");
    expect(formatDuration(250)).toBe("250 ms");
    expect(formatDuration(1500)).toBe("1.5 s");
    expect(formatDuration(125_000)).toBe("2 min 5 s");
  });
});
