// Definition JSON -> graph (nodes and typed edges) -> layered layout.
// Shared by the modeller (editable canvas) and the console (read-only views).
import dagre from "@dagrejs/dagre";
import type { Step, WorkflowDefinition } from "./definition";

export type EdgeKind =
  | "next" // nextStep
  | "condition" // one entry of conditionalNextSteps (DECISION or inline routing)
  | "parallel" // one element of parallelNextSteps
  | "timer" // interrupting boundary timer
  | "timer-non-interrupting"; // non-interrupting boundary timer

export interface GraphEdge {
  /** Stable id derived from the source field: `stepId:next`, `stepId:cond:0`, `stepId:par:1`, `stepId:timer:0`. */
  id: string;
  source: string;
  target: string;
  kind: EdgeKind;
  /** Condition expression, parallel branch number, or timer duration. */
  label?: string;
  /** Position within its list (conditions, parallel branches, timers). */
  index?: number;
}

export interface GraphNode {
  id: string;
  type: string;
  name: string;
  /** Index of the step in `steps` (0 = entry step). */
  index: number;
  step: Step;
}

export interface Graph {
  nodes: GraphNode[];
  edges: GraphEdge[];
}

export function edgeId(source: string, kind: EdgeKind, index?: number): string {
  switch (kind) {
    case "next":
      return `${source}:next`;
    case "condition":
      return `${source}:cond:${index ?? 0}`;
    case "parallel":
      return `${source}:par:${index ?? 0}`;
    default:
      return `${source}:timer:${index ?? 0}`;
  }
}

/** Every edge of the definition; references to unknown steps are kept out (the validator reports them). */
export function definitionToGraph(definition: WorkflowDefinition): Graph {
  // A duplicated id is drawn once (the validator reports STEP_ID_UNIQUE).
  const seen = new Set<string>();
  const steps = (Array.isArray(definition.steps) ? definition.steps : []).filter((s) => {
    if (!s || typeof s.id !== "string" || seen.has(s.id)) return false;
    seen.add(s.id);
    return true;
  });
  const ids = new Set(steps.map((s) => s.id));
  const entry = Array.isArray(definition.steps) ? definition.steps[0] : undefined;
  const nodes: GraphNode[] = steps.map((step, index) => ({
    id: step.id,
    type: String(step.type),
    name: step.name,
    index: step === entry ? 0 : Math.max(index, 1),
    step,
  }));
  const edges: GraphEdge[] = [];
  const add = (edge: GraphEdge) => {
    if (ids.has(edge.target)) edges.push(edge);
  };
  for (const step of steps) {
    if (typeof step.nextStep === "string" && step.nextStep !== "") {
      add({ id: edgeId(step.id, "next"), source: step.id, target: step.nextStep, kind: "next" });
    }
    if (step.conditionalNextSteps && typeof step.conditionalNextSteps === "object") {
      Object.entries(step.conditionalNextSteps).forEach(([expression, target], index) => {
        add({
          id: edgeId(step.id, "condition", index),
          source: step.id,
          target,
          kind: "condition",
          label: expression,
          index,
        });
      });
    }
    if (Array.isArray(step.parallelNextSteps)) {
      step.parallelNextSteps.forEach((target, index) => {
        add({
          id: edgeId(step.id, "parallel", index),
          source: step.id,
          target,
          kind: "parallel",
          label: `branch ${index + 1}`,
          index,
        });
      });
    }
    if (Array.isArray(step.boundaryEvents)) {
      step.boundaryEvents.forEach((event, index) => {
        add({
          id: edgeId(step.id, "timer", index),
          source: step.id,
          target: event.targetStepId,
          kind: event.interrupting ? "timer" : "timer-non-interrupting",
          label: `timer ${event.duration}`,
          index,
        });
      });
    }
  }
  return { nodes, edges };
}

export interface Size {
  width: number;
  height: number;
}

/** Node sizes by step type, shared by layout and rendering. */
export function nodeSize(type: string): Size {
  switch (type) {
    case "DECISION":
    case "PARALLEL_GATEWAY":
    case "JOIN_GATEWAY":
      return { width: 64, height: 64 };
    case "END":
      return { width: 48, height: 48 };
    default:
      return { width: 168, height: 60 };
  }
}

export type Positions = Record<string, { x: number; y: number }>;

/** A layered (Sugiyama) layout, left to right; positions are top-left corners. */
export function layoutGraph(graph: Graph, direction: "LR" | "TB" = "LR"): Positions {
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: direction, nodesep: 36, ranksep: 56, marginx: 20, marginy: 20 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const node of graph.nodes) {
    g.setNode(node.id, { ...nodeSize(node.type) });
  }
  for (const edge of graph.edges) {
    if (edge.source !== edge.target) {
      g.setEdge(edge.source, edge.target, { weight: edge.kind === "next" ? 2 : 1 }, edge.id);
    }
  }
  dagre.layout(g);
  const positions: Positions = {};
  for (const node of graph.nodes) {
    const laid = g.node(node.id);
    const size = nodeSize(node.type);
    positions[node.id] = {
      x: Math.round(laid.x - size.width / 2),
      y: Math.round(laid.y - size.height / 2),
    };
  }
  return positions;
}
