// One instance: its diagram (path taken, active and failed steps, fired timers), actions,
// the history as a timeline, variables as a JSON tree, the audit log, chained links.
import { useMemo, useState } from "react";
import { api, type Instance } from "../shared/api";
import type { Step, WorkflowDefinition } from "../shared/definition";
import { GraphView } from "../shared/GraphView";
import { definitionToGraph } from "../shared/graph";
import { buildHash } from "../shell/router";
import { type AuditEntry, consoleApi, type StepExecution } from "./api";
import { ConfirmDialog } from "./ConfirmDialog";
import { when } from "./format";
import { JsonForm, JsonObjectInput, parseObject } from "./JsonForm";
import { JsonTree } from "./JsonTree";
import { decorate, durationMs, formatDuration } from "./path";
import { usePolling } from "./usePolling";

const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

interface Loaded {
  instance: Instance;
  history: StepExecution[];
  audit: AuditEntry[];
  links: { parent: string | null; children: string[] };
}

async function load(id: string): Promise<Loaded> {
  const [instance, history, audit, links] = await Promise.all([
    consoleApi.instance(id),
    consoleApi.history(id),
    consoleApi.audit(id),
    consoleApi.links(id),
  ]);
  return { instance, history: history.items, audit: audit.items, links };
}

type Action =
  | { kind: "cancel" }
  | { kind: "retry" }
  | { kind: "user-task"; stepId: string; variables: Record<string, unknown> }
  | { kind: "signal"; stepId: string; body: Record<string, unknown> };

export function InstanceDetail({ id }: { id: string }) {
  const [live, setLive] = useState(true);
  const [tab, setTab] = useState<"timeline" | "variables" | "audit">("timeline");
  const [action, setAction] = useState<Action | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const loaded = usePolling(() => load(id), [id], live);
  const data = loaded.data;
  const definitionKey = data ? `${data.instance.definitionId}@${data.instance.definitionVersion}` : "";
  const definition = usePolling(
    () =>
      data
        ? api.getDefinition(data.instance.definitionId, data.instance.definitionVersion)
        : Promise.resolve(null as WorkflowDefinition | null),
    [definitionKey],
    false,
  );

  const decorations = useMemo(() => {
    if (!data || !definition.data) return undefined;
    // A terminal instance keeps the steps it stopped at in currentStepIds: not active any more.
    const active = TERMINAL.has(data.instance.status) ? [] : data.instance.currentStepIds;
    return decorate(definitionToGraph(definition.data), data.history, data.audit, active);
  }, [data, definition.data]);

  if (loaded.error && !data) return <p className="page console error-text">{loaded.error}</p>;
  if (!data) return <p className="page console muted">Loading…</p>;
  const { instance } = data;
  const steps: Record<string, Step> = Object.fromEntries((definition.data?.steps ?? []).map((s) => [s.id, s]));
  const terminal = TERMINAL.has(instance.status);
  const current = instance.currentStepIds.filter((s) => steps[s]);
  const userTasks = current.filter((s) => steps[s].type === "USER_TASK");
  const waits = current.filter((s) => steps[s].type === "WAIT");
  const done = (message: string) => {
    setNotice(message);
    loaded.reload();
  };

  return (
    <div className="page console" data-testid="instance-detail">
      <div className="page-head">
        <a href={buildHash("instances")}>‹ Instances</a>
        <h2 className="mono">{instance.id}</h2>
        <span className={`status status-${instance.status.toLowerCase()}`} data-testid="instance-status">
          {instance.status}
        </span>
        <label className="live-toggle">
          <input type="checkbox" checked={live} onChange={(e) => setLive(e.target.checked)} data-testid="detail-live" /> live
          refresh
        </label>
      </div>
      <div className="facts">
        <span>
          Definition{" "}
          <a href={buildHash("definitions", [instance.definitionId])} data-testid="definition-link">
            {instance.definitionId}
          </a>{" "}
          v{instance.definitionVersion}
        </span>
        {instance.businessKey ? <span>Business key <b>{instance.businessKey}</b></span> : null}
        <span>Started {when(instance.startedAt)}</span>
        {instance.completedAt ? <span>Ended {when(instance.completedAt)}</span> : null}
        {data.links.parent ? (
          <span data-testid="parent-link">
            Chained from <a href={buildHash("instances", [data.links.parent])}>{data.links.parent}</a>
          </span>
        ) : null}
        {data.links.children.length ? (
          <span data-testid="child-links">
            Chained to{" "}
            {data.links.children.map((c) => (
              <a key={c} href={buildHash("instances", [c])}>
                {c}{" "}
              </a>
            ))}
          </span>
        ) : null}
      </div>
      {instance.failureReason !== undefined ? (
        <p className={instance.status === "FAILED" ? "error-box" : "ops-notice"} data-testid="failure-reason">
          {instance.status === "CANCELLED" ? "Cancel reason: " : "Failure: "}
          {instance.failureReason || "(none given)"}
        </p>
      ) : null}
      {notice ? (
        <p className="ops-notice" data-testid="action-notice">
          {notice}
        </p>
      ) : null}
      <div className="ops-actions">
        {instance.status === "FAILED" ? (
          <button className="primary" onClick={() => setAction({ kind: "retry" })} data-testid="action-retry">
            Retry from failed step
          </button>
        ) : null}
        {!terminal ? (
          <button className="danger" onClick={() => setAction({ kind: "cancel" })} data-testid="action-cancel">
            Cancel instance
          </button>
        ) : null}
      </div>
      {userTasks.length || waits.length ? (
        <div className="waiting-steps">
          {userTasks.map((stepId) => (
            <UserTaskCard
              key={stepId}
              step={steps[stepId]}
              template={formTemplate(definition.data, stepId)}
              onSubmit={(variables) => setAction({ kind: "user-task", stepId, variables })}
            />
          ))}
          {waits.map((stepId) => (
            <SignalCard key={stepId} step={steps[stepId]} onSubmit={(body) => setAction({ kind: "signal", stepId, body })} />
          ))}
        </div>
      ) : null}
      {definition.data ? (
        <>
          <GraphView definition={definition.data} decorations={decorations} height={360} />
          <p className="legend">
            <span className="legend-taken">━ path taken</span> <span className="legend-fired">━ timer fired</span>{" "}
            <span className="status status-running">RUNNING</span> <span className="status status-failed">FAILED</span>{" "}
            badges: latest execution of the step (× entries)
          </p>
        </>
      ) : definition.error ? (
        <p className="error-text">{definition.error}</p>
      ) : null}
      <div className="ops-tabs">
        {(["timeline", "variables", "audit"] as const).map((t) => (
          <button key={t} className={tab === t ? "ops-tab selected" : "ops-tab"} onClick={() => setTab(t)} data-testid={`tab-${t}`}>
            {t === "timeline" ? "History" : t === "variables" ? "Variables" : "Audit log"}
          </button>
        ))}
      </div>
      {tab === "timeline" ? <Timeline history={data.history} audit={data.audit} instance={instance} /> : null}
      {tab === "variables" ? <JsonTree value={instance.variables} testId="variables-tree" /> : null}
      {tab === "audit" ? <AuditTable audit={data.audit} /> : null}
      {action ? (
        <ActionDialog
          action={action}
          instance={instance}
          onClose={(message) => {
            setAction(null);
            if (message) done(message);
          }}
        />
      ) : null}
    </div>
  );
}

/** The JSON object a user task's form starts from: `metadata.forms[<stepId>]` of the
 * definition when present, else an empty object (fields can be added in the form). */
function formTemplate(definition: WorkflowDefinition | null, stepId: string): Record<string, unknown> {
  const metadata = (definition as { metadata?: { forms?: Record<string, unknown> } } | null)?.metadata;
  const form = metadata?.forms?.[stepId];
  return form && typeof form === "object" && !Array.isArray(form) ? (form as Record<string, unknown>) : {};
}

function UserTaskCard({
  step,
  template,
  onSubmit,
}: {
  step: Step;
  template: Record<string, unknown>;
  onSubmit: (variables: Record<string, unknown>) => void;
}) {
  const [value, setValue] = useState(template);
  const [error, setError] = useState<string | null>(null);
  return (
    <div className="card" data-testid={`user-task-${step.id}`}>
      <h4>
        {step.name || step.id} <span className="muted">user task</span>
      </h4>
      <JsonForm
        value={value}
        onChange={(next, problem) => {
          setValue(next);
          setError(problem);
        }}
        testId={`form-${step.id}`}
      />
      {error ? <p className="error-text">{error}</p> : null}
      <button className="primary" disabled={Boolean(error)} onClick={() => onSubmit(value)} data-testid={`complete-${step.id}`}>
        Complete task
      </button>
    </div>
  );
}

function SignalCard({ step, onSubmit }: { step: Step; onSubmit: (body: Record<string, unknown>) => void }) {
  const [text, setText] = useState("{}");
  const parsed = parseObject(text);
  return (
    <div className="card" data-testid={`wait-${step.id}`}>
      <h4>
        {step.name || step.id} <span className="muted">wait step: waiting for a signal</span>
      </h4>
      <label>
        Signal body (JSON object, merged into the variables)
        <JsonObjectInput text={text} onText={setText} testId={`signal-body-${step.id}`} rows={3} />
      </label>
      {parsed.error ? <p className="error-text">Body {parsed.error}</p> : null}
      <button className="primary" disabled={!parsed.value} onClick={() => parsed.value && onSubmit(parsed.value)} data-testid={`signal-${step.id}`}>
        Send signal
      </button>
    </div>
  );
}

function ActionDialog({ action, instance, onClose }: { action: Action; instance: Instance; onClose: (message: string | null) => void }) {
  const [reason, setReason] = useState("");
  const [patch, setPatch] = useState("");
  const patchParsed = parseObject(patch);
  switch (action.kind) {
    case "cancel":
      return (
        <ConfirmDialog
          title="Cancel this instance?"
          confirmLabel="Cancel instance"
          danger
          invalid={reason.trim() ? null : "Give a reason."}
          onConfirm={() => consoleApi.cancel(instance.id, reason.trim())}
          onClose={(ok) => onClose(ok ? "Instance cancelled." : null)}
        >
          <p>Open jobs, user tasks and timers are withdrawn. This cannot be undone.</p>
          <label>
            Reason
            <input value={reason} onChange={(e) => setReason(e.target.value)} data-testid="cancel-reason" autoFocus />
          </label>
        </ConfirmDialog>
      );
    case "retry":
      return (
        <ConfirmDialog
          title="Retry from the failed step?"
          confirmLabel="Retry"
          invalid={patchParsed.error ? `Variables ${patchParsed.error}` : null}
          onConfirm={() => consoleApi.retry(instance.id, patch.trim() ? patchParsed.value ?? undefined : undefined)}
          onClose={(ok) => onClose(ok ? "Instance retried from its failed step." : null)}
        >
          <p>
            Failure: <b>{instance.failureReason}</b>
          </p>
          <p>The failed step runs again (a service task gets a new job with its full retry budget).</p>
          <label>
            Variables to set first (optional JSON object)
            <JsonObjectInput text={patch} onText={setPatch} testId="retry-variables" rows={3} />
          </label>
        </ConfirmDialog>
      );
    case "user-task":
      return (
        <ConfirmDialog
          title={`Complete user task "${action.stepId}"?`}
          confirmLabel="Complete"
          onConfirm={() => consoleApi.completeUserTask(instance.id, action.stepId, action.variables)}
          onClose={(ok) => onClose(ok ? `User task ${action.stepId} completed.` : null)}
        >
          <p>These variables are merged into the instance:</p>
          <pre className="json-preview">{JSON.stringify(action.variables, null, 2)}</pre>
        </ConfirmDialog>
      );
    case "signal":
      return (
        <ConfirmDialog
          title={`Signal wait step "${action.stepId}"?`}
          confirmLabel="Send signal"
          onConfirm={() => consoleApi.signal(instance.id, action.stepId, action.body)}
          onClose={(ok) => onClose(ok ? `Wait step ${action.stepId} signalled.` : null)}
        >
          <p>The body is merged into the variables:</p>
          <pre className="json-preview">{JSON.stringify(action.body, null, 2)}</pre>
        </ConfirmDialog>
      );
  }
}

const EVENT_KINDS = new Set([
  "job-retried",
  "job-failed",
  "job-completed",
  "job-lease-expired",
  "job-failure-ignored",
  "timer-fired",
  "user-task-completed",
  "wait-signalled",
  "instance-retried",
  "instance-cancelled",
]);

function eventText(entry: AuditEntry): string {
  const d = entry.detail;
  switch (entry.kind) {
    case "job-retried":
      return `attempt failed: ${String(d.errorMessage ?? "")} — retried, ${String(d.retriesRemaining)} retries left`;
    case "job-failed":
      return `job failed: ${String(d.errorMessage ?? "")} — no retries left`;
    case "job-completed":
      return `job completed (${String(d.stepId ?? "")})`;
    case "job-lease-expired":
      return `lease expired (was ${String(d.previousWorker ?? "")})`;
    case "timer-fired":
      return `timer fired → ${String(d.target)} (${d.interrupting ? "interrupting" : "non-interrupting"})`;
    case "instance-retried":
      return `retried from ${(d.stepIds as string[] | undefined)?.join(", ") ?? ""}`;
    default:
      return entry.kind;
  }
}

type TimelineRow = { at: string; execution?: StepExecution; event?: AuditEntry };

function Timeline({ history, audit, instance }: { history: StepExecution[]; audit: AuditEntry[]; instance: Instance }) {
  const span = timeSpan(instance);
  const rows: TimelineRow[] = [
    ...history.map((e): TimelineRow => ({ at: e.startedAt, execution: e })),
    ...audit.filter((a) => EVENT_KINDS.has(a.kind)).map((a): TimelineRow => ({ at: a.at, event: a })),
  ].sort((x, y) => Date.parse(x.at) - Date.parse(y.at) || (x.execution ? -1 : 1));
  return (
    <table className="grid timeline" data-testid="timeline">
      <thead>
        <tr>
          <th>When</th>
          <th>Step</th>
          <th>Attempt</th>
          <th>Status</th>
          <th>Duration</th>
          <th className="bar-col">Timeline</th>
          <th>Worker / actor</th>
          <th>Failure reason / event</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((row) =>
          row.execution ? (
            <tr key={`e-${row.execution.id}`} className={`exec exec-${row.execution.status.toLowerCase()}`} data-testid={`exec-${row.execution.stepId}-${row.execution.attemptNumber}`}>
              <td>{when(row.execution.startedAt)}</td>
              <td>
                <b>{row.execution.stepId}</b> <span className="muted">{row.execution.stepType}</span>
              </td>
              <td>#{row.execution.attemptNumber}</td>
              <td>
                <span className={`status status-${row.execution.status.toLowerCase()}`}>{row.execution.status}</span>
              </td>
              <td>{formatDuration(durationMs(row.execution.startedAt, row.execution.endedAt))}</td>
              <td className="bar-col">
                <Bar span={span} start={row.execution.startedAt} end={row.execution.endedAt} status={row.execution.status} />
              </td>
              <td />
              <td className="error-text">{row.execution.failureReason ?? ""}</td>
            </tr>
          ) : (
            <tr key={`a-${row.event!.id}`} className="event">
              <td>{when(row.event!.at)}</td>
              <td colSpan={4} className="muted">
                ↳ {row.event!.kind}
              </td>
              <td className="bar-col">
                <Bar span={span} start={row.event!.at} end={row.event!.at} status="event" />
              </td>
              <td className="mono">{row.event!.actor}</td>
              <td>{eventText(row.event!)}</td>
            </tr>
          ),
        )}
      </tbody>
    </table>
  );
}

/** The instance's time span: start to end (or to now while it runs). */
function timeSpan(instance: Instance): [number, number] {
  const start = Date.parse(instance.startedAt);
  const end = instance.completedAt ? Date.parse(instance.completedAt) : Date.now();
  return [start, Math.max(end, start + 1)];
}

/** Where an execution (or an event) sits within the instance's span, as a bar. */
function Bar({ span, start, end, status }: { span: [number, number]; start: string; end: string | null; status: string }) {
  const [t0, t1] = span;
  const total = t1 - t0;
  const from = Math.min(Math.max((Date.parse(start) - t0) / total, 0), 1);
  const to = end ? Math.min(Math.max((Date.parse(end) - t0) / total, from), 1) : 1;
  return (
    <div className="bar-track">
      <div
        className={`bar bar-${status.toLowerCase()}`}
        style={{ left: `${from * 100}%`, width: `max(${(to - from) * 100}%, 3px)` }}
      />
    </div>
  );
}

function AuditTable({ audit }: { audit: AuditEntry[] }) {
  if (!audit.length) return <p className="muted">No audit entries (the audit log may be disabled).</p>;
  return (
    <table className="grid" data-testid="audit-table">
      <thead>
        <tr>
          <th>#</th>
          <th>At</th>
          <th>Actor</th>
          <th>Kind</th>
          <th>Detail</th>
        </tr>
      </thead>
      <tbody>
        {audit.map((a) => (
          <tr key={a.id}>
            <td>{a.id}</td>
            <td>{when(a.at)}</td>
            <td className="mono">{a.actor}</td>
            <td>{a.kind}</td>
            <td className="mono small">{JSON.stringify(a.detail)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
