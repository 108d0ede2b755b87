// Graph -> React Flow nodes and edges, with one look per edge kind.
import { MarkerType, type Edge } from "@xyflow/react";
import { nodeSize, type Graph, type GraphEdge, type Positions } from "./graph";
import type { StepFlowNode, StepNodeData } from "./StepNode";

export interface FlowDecorations {
  /** Per step id: worst issue and count. */
  issues?: Record<string, { severity: "error" | "warning"; count: number }>;
  /** Per step id: a status badge. */
  status?: Record<string, string>;
  /** Edge ids to mark as having an issue. */
  edgeIssues?: Set<string>;
  /** Edge ids to highlight: the path an instance took, timers that fired. */
  edgeHighlights?: Record<string, "taken" | "fired">;
}

const HIGHLIGHT_COLORS = { taken: "#16a34a", fired: "#ea580c" } as const;

const EDGE_COLORS: Record<GraphEdge["kind"], string> = {
  next: "#55606e",
  condition: "#2563eb",
  parallel: "#15803d",
  timer: "#c2410c",
  "timer-non-interrupting": "#c2410c",
};

export function edgeLabel(edge: GraphEdge): string | undefined {
  if (edge.kind === "condition") return `${(edge.index ?? 0) + 1}. ${edge.label ?? ""}`;
  return edge.label;
}

export function toFlowNodes(
  graph: Graph,
  positions: Positions,
  decorations: FlowDecorations = {},
  selected?: string | null,
): StepFlowNode[] {
  return graph.nodes.map((node) => {
    const issue = decorations.issues?.[node.id];
    const data: StepNodeData = {
      step: node.step,
      entry: node.index === 0,
      issue: issue?.severity,
      issueCount: issue?.count,
      status: decorations.status?.[node.id],
    };
    const size = nodeSize(node.type);
    return {
      id: node.id,
      type: "step",
      width: size.width,
      height: size.height,
      position: positions[node.id] ?? { x: 0, y: 0 },
      data,
      selected: selected === node.id,
    };
  });
}

export function toFlowEdges(graph: Graph, decorations: FlowDecorations = {}, selected?: string | null): Edge[] {
  return graph.edges.map((edge) => {
    const highlight = decorations.edgeHighlights?.[edge.id];
    const color = decorations.edgeIssues?.has(edge.id)
      ? "#dc2626"
      : highlight
        ? HIGHLIGHT_COLORS[highlight]
        : EDGE_COLORS[edge.kind];
    return {
      id: edge.id,
      source: edge.source,
      target: edge.target,
      label: edgeLabel(edge),
      type: "default",
      selected: selected === edge.id,
      className: `edge-${edge.kind}${highlight ? ` edge-${highlight}` : ""}`,
      animated: highlight === "fired",
      data: { kind: edge.kind, index: edge.index },
      style: {
        stroke: color,
        strokeWidth: highlight ? 3.2 : edge.kind === "parallel" ? 2.5 : 1.6,
        strokeDasharray: edge.kind === "timer-non-interrupting" ? "6 4" : undefined,
      },
      labelStyle: { fill: color, fontSize: 11 },
      labelBgStyle: { fill: "#ffffff", fillOpacity: 0.9 },
      markerEnd: { type: MarkerType.ArrowClosed, color },
    };
  });
}
