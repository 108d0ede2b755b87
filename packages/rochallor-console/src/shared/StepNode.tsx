// The node of every step type, with a distinct shape per type. Used by the modeller's
// canvas and by the console's read-only views (through GraphView).
import { Handle, Position, type Node, type NodeProps } from "@xyflow/react";
import type { ReactNode } from "react";
import type { Step } from "./definition";
import { nodeSize } from "./graph";

export interface StepNodeData extends Record<string, unknown> {
  step: Step;
  /** Entry step (first in `steps`). */
  entry?: boolean;
  /** Worst validation issue on this step, if any. */
  issue?: "error" | "warning";
  /** Number of issues on this step. */
  issueCount?: number;
  /** Free status badge (the console shows execution states with it). */
  status?: string;
}

export type StepFlowNode = Node<StepNodeData, "step">;

// Plain characters found in common system fonts (no emoji: headless and minimal systems lack
// an emoji font); the user and wait icons are drawn.
const ICONS: Record<string, ReactNode> = {
  SERVICE_TASK: "⚙",
  USER_TASK: (
    <svg width="11" height="11" viewBox="0 0 12 12" aria-hidden="true">
      <circle cx="6" cy="3.5" r="2.5" fill="currentColor" />
      <path d="M1 12c0-3 2.2-5 5-5s5 2 5 5z" fill="currentColor" />
    </svg>
  ),
  DECISION_TABLE: "▦",
  TRANSFORMATION: "ƒx",
  WAIT: (
    <svg width="11" height="11" viewBox="0 0 12 12" aria-hidden="true">
      <rect x="2" y="1" width="3" height="10" fill="currentColor" />
      <rect x="7" y="1" width="3" height="10" fill="currentColor" />
    </svg>
  ),
  DECISION: "?",
  PARALLEL_GATEWAY: "+",
  JOIN_GATEWAY: "⋈",
};

/** The SVG outline of a step type, drawn in a box of the type's size. */
export function StepShape({ type, width, height }: { type: string; width: number; height: number }) {
  const w = width;
  const h = height;
  switch (type) {
    case "DECISION":
    case "PARALLEL_GATEWAY":
    case "JOIN_GATEWAY":
      return (
        <polygon
          className="shape"
          points={`${w / 2},2 ${w - 2},${h / 2} ${w / 2},${h - 2} 2,${h / 2}`}
        />
      );
    case "END":
      return <circle className="shape shape-end" cx={w / 2} cy={h / 2} r={Math.min(w, h) / 2 - 3} />;
    case "WAIT":
      return (
        <>
          <rect className="shape" x={1} y={1} width={w - 2} height={h - 2} rx={10} />
          <rect className="shape-inner" x={5} y={5} width={w - 10} height={h - 10} rx={7} />
        </>
      );
    case "TRANSFORMATION":
      return <rect className="shape shape-dashed" x={1} y={1} width={w - 2} height={h - 2} rx={4} />;
    case "DECISION_TABLE":
      return (
        <>
          <rect className="shape" x={1} y={1} width={w - 2} height={h - 2} rx={2} />
          <line className="shape-inner" x1={1} y1={16} x2={w - 1} y2={16} />
        </>
      );
    default:
      return <rect className="shape" x={1} y={1} width={w - 2} height={h - 2} rx={10} />;
  }
}

export function isCompact(type: string): boolean {
  return type === "DECISION" || type === "PARALLEL_GATEWAY" || type === "JOIN_GATEWAY" || type === "END";
}

export function StepNode({ data, selected }: NodeProps<StepFlowNode>) {
  const step = data.step;
  const type = String(step.type);
  const { width, height } = nodeSize(type);
  const compact = isCompact(type);
  const classes = [
    "step-node",
    `step-${type.toLowerCase().replace(/_/g, "-")}`,
    selected ? "selected" : "",
    data.issue ? `has-${data.issue}` : "",
    data.status ? `status-${data.status.toLowerCase()}` : "",
  ].join(" ");
  return (
    <div
      className={classes}
      style={{ width, height }}
      data-step-id={step.id}
      data-step-type={type}
      data-issue={data.issue ?? ""}
      title={`${step.name ?? ""} (${type})`}
    >
      <svg className="step-svg" width={width} height={height}>
        <StepShape type={type} width={width} height={height} />
      </svg>
      {compact ? (
        <>
          <span className="step-icon-center">{ICONS[type] ?? ""}</span>
          <span className="step-label-below">{step.name || step.id}</span>
        </>
      ) : (
        <div className="step-body">
          <span className="step-icon">{ICONS[type] ?? ""}</span>
          <span className="step-label">{step.name || step.id}</span>
          {step.jobType ? <span className="step-sub">{step.jobType}</span> : null}
        </div>
      )}
      {data.entry ? <span className="step-entry" title="Entry step">▶</span> : null}
      {data.issueCount ? (
        <span className={`step-badge badge-${data.issue}`} data-testid={`issues-${step.id}`}>
          {data.issueCount}
        </span>
      ) : null}
      {data.status ? <span className="step-status">{data.status}</span> : null}
      <Handle type="target" position={Position.Left} />
      {type !== "END" ? <Handle type="source" position={Position.Right} /> : null}
    </div>
  );
}

export const nodeTypes = { step: StepNode };
