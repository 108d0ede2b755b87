// The workflow definition document, as the engine reads and writes it
// (the product's workflow format; decision tables in the decision-table format).
// Only shapes live here: every rule is checked by the server's validator.

export const STEP_TYPES = [
  "SERVICE_TASK",
  "USER_TASK",
  "DECISION",
  "DECISION_TABLE",
  "TRANSFORMATION",
  "WAIT",
  "PARALLEL_GATEWAY",
  "JOIN_GATEWAY",
  "END",
] as const;

export type StepType = (typeof STEP_TYPES)[number];

export interface BoundaryEvent {
  type: "TIMER" | string;
  duration: string;
  interrupting?: boolean;
  targetStepId: string;
}

export interface DecisionTableInput {
  id?: string;
  label?: string;
  expression: string;
}

export interface DecisionTableOutput {
  name: string;
  label?: string;
  defaultValue?: unknown;
}

export interface DecisionTableRule {
  id?: string;
  description?: string;
  inputEntries: string[];
  outputEntries: unknown[];
}

export interface Step {
  id: string;
  name: string;
  type: StepType | string;
  description?: string;
  nextStep?: string;
  conditionalNextSteps?: Record<string, string>;
  jobType?: string;
  delegateClass?: string;
  retryCount?: number;
  transformations?: Record<string, unknown>;
  parallelNextSteps?: string[];
  joinStep?: string;
  boundaryEvents?: BoundaryEvent[];
  hitPolicy?: string;
  aggregation?: string;
  inputs?: DecisionTableInput[];
  outputs?: DecisionTableOutput[];
  rules?: DecisionTableRule[];
  [extra: string]: unknown;
}

export interface WorkflowDefinition {
  id: string;
  name: string;
  description?: string;
  steps: Step[];
  autoStartNextWorkflow?: boolean;
  nextWorkflowId?: string;
  metadata?: unknown;
  version?: number;
  [extra: string]: unknown;
}

export const STEP_TYPE_LABELS: Record<StepType, string> = {
  SERVICE_TASK: "Service task",
  USER_TASK: "User task",
  DECISION: "Decision",
  DECISION_TABLE: "Decision table",
  TRANSFORMATION: "Transformation",
  WAIT: "Wait",
  PARALLEL_GATEWAY: "Parallel gateway",
  JOIN_GATEWAY: "Join gateway",
  END: "End",
};

export function isStepType(value: unknown): value is StepType {
  return typeof value === "string" && (STEP_TYPES as readonly string[]).includes(value);
}

/** Types whose steps may carry boundary timers. */
export const BOUNDARY_PARENTS: readonly string[] = ["SERVICE_TASK", "USER_TASK", "WAIT"];
