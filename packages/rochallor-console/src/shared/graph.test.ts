import { describe, expect, it } from "vitest";
import type { WorkflowDefinition } from "./definition";
import { definitionToGraph, layoutGraph, nodeSize } from "./graph";

const loan: WorkflowDefinition = {
  id: "LOS::loan",
  name: "Loan",
  steps: [
    { id: "start", name: "Start", type: "SERVICE_TASK", jobType: "a", nextStep: "checks" },
    { id: "checks", name: "Checks", type: "PARALLEL_GATEWAY", parallelNextSteps: ["x", "y"], joinStep: "join" },
    { id: "x", name: "X", type: "SERVICE_TASK", jobType: "x", nextStep: "join" },
    {
      id: "y",
      name: "Y",
      type: "USER_TASK",
      nextStep: "join",
      boundaryEvents: [
        { type: "TIMER", duration: "PT1H", interrupting: true, targetStepId: "end" },
        { type: "TIMER", duration: "P1D", targetStepId: "x" },
      ],
    },
    { id: "join", name: "Join", type: "JOIN_GATEWAY", nextStep: "route" },
    { id: "route", name: "Route", type: "DECISION", conditionalNextSteps: { "a > 1": "end", "a <= 1": "missing" } },
    { id: "end", name: "End", type: "END" },
  ],
};

describe("definitionToGraph", () => {
  it("makes one node per step, the first being the entry", () => {
    const graph = definitionToGraph(loan);
    expect(graph.nodes.map((n) => n.id)).toEqual(["start", "checks", "x", "y", "join", "route", "end"]);
    expect(graph.nodes[0].index).toBe(0);
  });

  it("types every edge by the field it comes from, in written order", () => {
    const graph = definitionToGraph(loan);
    const byId = Object.fromEntries(graph.edges.map((e) => [e.id, e]));
    expect(byId["start:next"]).toMatchObject({ source: "start", target: "checks", kind: "next" });
    expect(byId["checks:par:0"]).toMatchObject({ target: "x", kind: "parallel", index: 0 });
    expect(byId["checks:par:1"]).toMatchObject({ target: "y", kind: "parallel", index: 1 });
    expect(byId["y:timer:0"]).toMatchObject({ target: "end", kind: "timer", label: "timer PT1H" });
    expect(byId["y:timer:1"]).toMatchObject({ target: "x", kind: "timer-non-interrupting" });
    expect(byId["route:cond:0"]).toMatchObject({ target: "end", kind: "condition", label: "a > 1", index: 0 });
  });

  it("leaves out references to unknown steps and the joinStep field", () => {
    const graph = definitionToGraph(loan);
    expect(graph.edges.find((e) => e.target === "missing")).toBeUndefined();
    expect(graph.edges.find((e) => e.source === "checks" && e.target === "join")).toBeUndefined();
  });

  it("survives a document without steps", () => {
    expect(definitionToGraph({ id: "a", name: "a" } as unknown as WorkflowDefinition)).toEqual({ nodes: [], edges: [] });
  });
});

describe("layoutGraph", () => {
  it("places every node, successors to the right of their predecessors", () => {
    const graph = definitionToGraph(loan);
    const positions = layoutGraph(graph);
    expect(Object.keys(positions).sort()).toEqual(graph.nodes.map((n) => n.id).sort());
    for (const edge of graph.edges.filter((e) => e.kind === "next" || e.kind === "parallel")) {
      expect(positions[edge.target].x).toBeGreaterThan(positions[edge.source].x);
    }
  });

  it("does not overlap nodes", () => {
    const graph = definitionToGraph(loan);
    const positions = layoutGraph(graph);
    const boxes = graph.nodes.map((n) => ({ ...positions[n.id], ...nodeSize(n.type) }));
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i];
        const b = boxes[j];
        const overlap = a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
        expect(overlap).toBe(false);
      }
    }
  });
});
