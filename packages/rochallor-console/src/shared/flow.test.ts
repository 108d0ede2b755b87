import { describe, expect, it } from "vitest";
import type { WorkflowDefinition } from "./definition";
import { toFlowEdges, toFlowNodes } from "./flow";
import { definitionToGraph, layoutGraph } from "./graph";

const definition: WorkflowDefinition = {
  id: "a",
  name: "a",
  steps: [
    {
      id: "w",
      name: "W",
      type: "WAIT",
      nextStep: "d",
      boundaryEvents: [
        { type: "TIMER", duration: "PT1H", interrupting: true, targetStepId: "e" },
        { type: "TIMER", duration: "P1D", targetStepId: "e" },
      ],
    },
    { id: "d", name: "D", type: "DECISION", conditionalNextSteps: { "x > 1": "e", "x <= 1": "w" } },
    { id: "e", name: "E", type: "END" },
  ],
};

describe("flow edges", () => {
  const graph = definitionToGraph(definition);
  const edges = Object.fromEntries(toFlowEdges(graph, { edgeIssues: new Set(["d:cond:1"]) }).map((e) => [e.id, e]));

  it("draw interrupting timers solid and non-interrupting ones dashed", () => {
    expect(edges["w:timer:0"].style?.strokeDasharray).toBeUndefined();
    expect(edges["w:timer:1"].style?.strokeDasharray).toBe("6 4");
    expect(edges["w:timer:0"].className).toBe("edge-timer");
    expect(edges["w:timer:1"].className).toBe("edge-timer-non-interrupting");
  });

  it("number conditions in evaluation order and colour those with an issue", () => {
    expect(edges["d:cond:0"].label).toBe("1. x > 1");
    expect(edges["d:cond:1"].label).toBe("2. x <= 1");
    expect(edges["d:cond:1"].style?.stroke).toBe("#dc2626");
    expect(edges["d:cond:0"].style?.stroke).not.toBe("#dc2626");
  });
});

describe("flow nodes", () => {
  it("carry the entry flag, issues and the type's size", () => {
    const graph = definitionToGraph(definition);
    const nodes = toFlowNodes(graph, layoutGraph(graph), { issues: { d: { severity: "error", count: 2 } } }, "e");
    const byId = Object.fromEntries(nodes.map((n) => [n.id, n]));
    expect(byId.w.data.entry).toBe(true);
    expect(byId.d.data.entry).toBe(false);
    expect(byId.d.data).toMatchObject({ issue: "error", issueCount: 2 });
    expect(byId.e.selected).toBe(true);
    expect([byId.d.width, byId.d.height]).toEqual([64, 64]);
  });
});
