// What an instance did, drawn on its definition: step badges, the edges it took, fired timers.
import type { FlowDecorations } from "../shared/flow";
import type { Graph } from "../shared/graph";
import type { AuditEntry, StepExecution } from "./api";

export interface StepSummary {
  /** Status of the latest execution of the step. */
  status: string;
  /** How many times the step was entered. */
  entries: number;
}

export function summarise(history: StepExecution[]): Record<string, StepSummary> {
  const out: Record<string, StepSummary> = {};
  for (const execution of history) {
    const seen = out[execution.stepId];
    out[execution.stepId] = { status: execution.status, entries: (seen?.entries ?? 0) + 1 };
  }
  return out;
}

/** Targets of the boundary timers that fired (from the audit log). */
export function firedTimerTargets(audit: AuditEntry[]): Set<string> {
  const targets = new Set<string>();
  for (const entry of audit) {
    if (entry.kind === "timer-fired" && typeof entry.detail.target === "string") targets.add(entry.detail.target);
  }
  return targets;
}

/**
 * Decorations of an instance's diagram: a badge per entered step (its latest status, and the
 * number of entries when more than one), current steps marked ACTIVE, edges taken (the source
 * completed and the target was entered afterwards), and timer edges whose timer fired.
 */
export function decorate(
  graph: Graph,
  history: StepExecution[],
  audit: AuditEntry[],
  currentStepIds: string[],
): FlowDecorations {
  const status: Record<string, string> = {};
  for (const [stepId, summary] of Object.entries(summarise(history))) {
    status[stepId] = summary.entries > 1 ? `${summary.status} ×${summary.entries}` : summary.status;
  }
  for (const stepId of currentStepIds) {
    if (!status[stepId]?.startsWith("RUNNING")) status[stepId] = "ACTIVE";
  }
  const fired = firedTimerTargets(audit);
  const edgeHighlights: Record<string, "taken" | "fired"> = {};
  for (const edge of graph.edges) {
    if (edge.kind === "timer" || edge.kind === "timer-non-interrupting") {
      const parentEntered = history.some((e) => e.stepId === edge.source);
      if (parentEntered && fired.has(edge.target)) edgeHighlights[edge.id] = "fired";
      continue;
    }
    const taken = history.some(
      (source) =>
        source.stepId === edge.source &&
        source.status === "COMPLETED" &&
        source.endedAt !== null &&
        history.some(
          (target) => target.stepId === edge.target && Date.parse(target.startedAt) >= Date.parse(source.endedAt!),
        ),
    );
    if (taken) edgeHighlights[edge.id] = "taken";
  }
  return { status, edgeHighlights };
}

/** Milliseconds between two RFC 3339 times (null while still running). */
export function durationMs(startedAt: string, endedAt: string | null): number | null {
  if (!endedAt) return null;
  return Date.parse(endedAt) - Date.parse(startedAt);
}

export function formatDuration(ms: number | null): string {
  if (ms === null) return "running";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  if (minutes < 60) return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}
