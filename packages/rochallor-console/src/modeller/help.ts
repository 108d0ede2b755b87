// Inline help of the property panel (from the workflow format and decision-table format).

export const HELP: Record<string, string> = {
  id: "Unique within the definition. Renaming updates every reference to the step.",
  name: "Human label (required).",
  description: "Free text.",
  jobType: "Routing label workers poll by (required on a service task; optional on a user task, for task lists).",
  retryCount: "Retryable failures tolerated before the instance fails (integer ≥ 0, default 0).",
  delegateClass: "Advisory only: stored, never interpreted.",
  nextStep: "The step that runs after this one.",
  conditions:
    "Boolean expressions tried in the order listed; the first that yields true picks the next step. On a task or wait the list (inline routing) takes precedence over nextStep.",
  transformations:
    "Variables to set. A value written ${…} is an expression (e.g. ${total * 1.2}, ${now()}); anything else is a JSON literal or, if not JSON, a string.",
  parallelNextSteps: "First step of each branch (≥ 2, distinct), started in this order.",
  joinStep: "The join gateway where all branches of this gateway meet again.",
  boundaryEvents:
    "Timers on this step. ISO-8601 duration (PT30S, PT1H30M, P2D, P1W). Interrupting: cancels the step and goes to the target. Non-interrupting: the target runs alongside.",
  hitPolicy:
    "U unique, A any (equal outputs), F first, R rule order (lists), C collect; C+ sum, C# count, C< min, C> max.",
  aggregation: "Only with hit policy C: SUM, COUNT, MIN or MAX (exactly one output).",
  inputs: "Input expressions, evaluated once (undefined variables are null).",
  outputs: "Variables written; default used when no rule matches (single-hit policies).",
  rules:
    "Input entries are unary tests: -, 42, \"GOLD\", < 500, [1..10], \"A\", \"B\", not(\"US\"). Output entries are JSON literals or ${…} expressions.",
  definitionId: "Natural key of every version: letters, digits, _ : - (e.g. SHOP::order-fulfilment).",
  autoStartNextWorkflow: "When set, completing an instance starts the latest version of the next workflow.",
  nextWorkflowId: "Definition id started when this one completes.",
  metadata: "Any JSON, stored and returned untouched.",
};
