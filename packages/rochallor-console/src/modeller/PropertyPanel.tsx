// Properties of the selected step (per type), of the selected edge, or of the definition.
import { useEffect, useState, type ReactNode } from "react";
import type { BoundaryEvent, DecisionTableRule, Step, WorkflowDefinition } from "../shared/definition";
import { BOUNDARY_PARENTS, STEP_TYPE_LABELS, isStepType } from "../shared/definition";
import { edgeLabel } from "../shared/flow";
import { definitionToGraph } from "../shared/graph";
import { HELP } from "./help";
import { fieldIssues, type LocatedIssue } from "./issues";
import { literalToText, textToLiteral } from "./literal";
import {
  addBoundaryEvent,
  addCondition,
  conditions,
  findStep,
  makeEntry,
  moveCondition,
  parseEdgeId,
  removeCondition,
  removeEdge,
  type Selection,
  setCondition,
  updateDefinition,
  updateStep,
} from "./model";

type Edit = (fn: (d: WorkflowDefinition) => WorkflowDefinition, coalesceKey?: string) => void;

interface PanelProps {
  definition: WorkflowDefinition;
  selection: Selection;
  issues: LocatedIssue[];
  edit: Edit;
  rename: (from: string, to: string) => void;
  onSelect: (selection: Selection) => void;
  onDelete: () => void;
}

// -- small parts ---------------------------------------------------------------------------

/** An issue message; for an expression error, the text with the error position marked. */
function IssueLines({ issues, text }: { issues: LocatedIssue[]; text?: string }) {
  if (issues.length === 0) return null;
  return (
    <>
      {issues.map((issue, n) => (
        <div key={n} className={issue.severity === "warning" ? "field-warning" : "field-error"} data-testid="field-issue" data-code={issue.code}>
          {issue.message}
          {issue.position !== undefined && text !== undefined ? (
            <code className="caret-view" data-testid="expression-position">
              {text.slice(0, issue.position)}
              <mark>{text.slice(issue.position, issue.position + 1) || " "}</mark>
              {text.slice(issue.position + 1)}
            </code>
          ) : null}
        </div>
      ))}
    </>
  );
}

function Field({ label, help, issues = [], text, children }: { label: string; help?: string; issues?: LocatedIssue[]; text?: string; children: ReactNode }) {
  return (
    <div className="field">
      <label>
        <span className="field-label">{label}</span>
        {children}
      </label>
      {help ? <div className="help">{help}</div> : null}
      <IssueLines issues={issues} text={text} />
    </div>
  );
}

function StepSelect({
  value,
  definition,
  onChange,
  exclude,
  only,
  testId,
  placeholder = "— none —",
}: {
  value: string | undefined;
  definition: WorkflowDefinition;
  onChange: (value: string) => void;
  exclude?: string;
  only?: string;
  testId?: string;
  placeholder?: string;
}) {
  const options = definition.steps.filter((s) => s.id !== exclude && (!only || s.type === only));
  const known = !value || definition.steps.some((s) => s.id === value);
  return (
    <select value={value ?? ""} onChange={(e) => onChange(e.target.value)} data-testid={testId}>
      <option value="">{placeholder}</option>
      {!known ? <option value={value}>{value} (missing)</option> : null}
      {options.map((s) => (
        <option key={s.id} value={s.id}>
          {s.name ? `${s.name} (${s.id})` : s.id}
        </option>
      ))}
    </select>
  );
}

/** Commits on Enter or blur (renaming is one undoable edit). */
function IdInput({ id, onRename }: { id: string; onRename: (to: string) => void }) {
  const [text, setText] = useState(id);
  useEffect(() => setText(id), [id]);
  const apply = () => {
    if (text !== id) onRename(text);
  };
  return (
    <input
      value={text}
      data-testid="prop-id"
      onChange={(e) => setText(e.target.value)}
      onBlur={apply}
      onKeyDown={(e) => {
        if (e.key === "Enter") apply();
        if (e.key === "Escape") setText(id);
      }}
    />
  );
}

/** A JSON-or-string cell (transformation values, decision-table outputs, defaults). */
function LiteralInput({ value, onChange, testId, placeholder }: { value: unknown; onChange: (v: unknown) => void; testId?: string; placeholder?: string }) {
  const [text, setText] = useState(() => literalToText(value));
  useEffect(() => {
    if (textToLiteral(text) !== value && JSON.stringify(textToLiteral(text)) !== JSON.stringify(value)) setText(literalToText(value));
  }, [value]);
  return (
    <input
      value={text}
      placeholder={placeholder}
      data-testid={testId}
      onChange={(e) => {
        setText(e.target.value);
        onChange(textToLiteral(e.target.value));
      }}
    />
  );
}

// -- per-field editors ---------------------------------------------------------------------

function ConditionsEditor({ step, definition, issues, edit, inline }: { step: Step; definition: WorkflowDefinition; issues: LocatedIssue[]; edit: Edit; inline: boolean }) {
  const entries = conditions(step);
  const [duplicate, setDuplicate] = useState<number | null>(null);
  const all = fieldIssues(issues, step.id, "conditionalNextSteps");
  const general = all.filter((i) => i.location.index === undefined);
  return (
    <div className="field" data-testid="conditions">
      <span className="field-label">{inline ? "Inline routing (conditions, in order)" : "Conditions (in order)"}</span>
      <div className="help">{HELP.conditions}</div>
      <IssueLines issues={general} />
      {entries.map(([expression, target], index) => {
        const rowIssues = all.filter((i) => i.location.index === index);
        return (
          <div key={index} className="condition-row" data-testid="condition-row">
            <div className="row">
              <span className="order">{index + 1}.</span>
              <input
                className="expression"
                value={expression}
                data-testid={`condition-expr-${index}`}
                onChange={(e) => {
                  const text = e.target.value;
                  if (entries.some(([k], i) => i !== index && k === text)) {
                    setDuplicate(index);
                    return;
                  }
                  setDuplicate(null);
                  edit((d) => setCondition(d, step.id, index, text, target), `${step.id}:cond:${index}`);
                }}
              />
            </div>
            <div className="row">
              <span className="arrow">→</span>
              <StepSelect
                value={target}
                definition={definition}
                exclude={undefined}
                testId={`condition-target-${index}`}
                onChange={(value) => edit((d) => setCondition(d, step.id, index, expression, value))}
              />
              <button title="Earlier" disabled={index === 0} onClick={() => edit((d) => moveCondition(d, step.id, index, -1))} data-testid={`condition-up-${index}`}>
                ↑
              </button>
              <button title="Later" disabled={index === entries.length - 1} onClick={() => edit((d) => moveCondition(d, step.id, index, 1))} data-testid={`condition-down-${index}`}>
                ↓
              </button>
              <button title="Remove" onClick={() => edit((d) => removeCondition(d, step.id, index))}>
                ✕
              </button>
            </div>
            {duplicate === index ? <div className="field-error">Another condition has this exact text (a JSON object cannot hold it twice).</div> : null}
            <IssueLines issues={rowIssues} text={expression} />
          </div>
        );
      })}
      <button onClick={() => edit((d) => addCondition(d, step.id))} data-testid="add-condition">
        + Condition
      </button>
    </div>
  );
}

function BoundaryEditor({ step, definition, issues, edit }: { step: Step; definition: WorkflowDefinition; issues: LocatedIssue[]; edit: Edit }) {
  const events = step.boundaryEvents ?? [];
  const all = fieldIssues(issues, step.id, "boundaryEvents");
  const setEvent = (index: number, patch: Partial<BoundaryEvent>, key?: string) =>
    edit(
      (d) => {
        const s = findStep(d, step.id)!;
        return updateStep(d, step.id, { boundaryEvents: (s.boundaryEvents ?? []).map((e, i) => (i === index ? { ...e, ...patch } : e)) });
      },
      key,
    );
  return (
    <div className="field" data-testid="boundary-events">
      <span className="field-label">Boundary timers</span>
      <div className="help">{HELP.boundaryEvents}</div>
      <IssueLines issues={all.filter((i) => i.location.index === undefined)} />
      {events.map((event, index) => (
        <div key={index} className="timer-row">
          <div className="row">
            <span className="field-label">timer</span>
            <input
              className="duration"
              value={event.duration ?? ""}
              placeholder="PT1H"
              data-testid={`timer-duration-${index}`}
              onChange={(e) => setEvent(index, { duration: e.target.value }, `${step.id}:timer:${index}`)}
            />
            <label className="inline">
              <input
                type="checkbox"
                checked={Boolean(event.interrupting)}
                data-testid={`timer-interrupting-${index}`}
                onChange={(e) => setEvent(index, { interrupting: e.target.checked })}
              />
              interrupting
            </label>
            <button
              title="Remove"
              onClick={() =>
                edit((d) => updateStep(d, step.id, { boundaryEvents: events.filter((_, i) => i !== index) }))
              }
            >
              ✕
            </button>
          </div>
          <div className="row">
            <span className="arrow">→</span>
            <StepSelect value={event.targetStepId} definition={definition} testId={`timer-target-${index}`} onChange={(v) => setEvent(index, { targetStepId: v })} />
          </div>
          <IssueLines issues={all.filter((i) => i.location.index === index)} />
        </div>
      ))}
      <button
        data-testid="add-timer"
        onClick={() => edit((d) => addBoundaryEvent(d, step.id, { type: "TIMER", duration: "PT1H", interrupting: false, targetStepId: "" }))}
      >
        + Timer
      </button>
    </div>
  );
}

function TransformationsEditor({ step, issues, edit }: { step: Step; issues: LocatedIssue[]; edit: Edit }) {
  const entries = Object.entries(step.transformations ?? {});
  const all = fieldIssues(issues, step.id, "transformations");
  const write = (next: [string, unknown][], key?: string) =>
    edit((d) => updateStep(d, step.id, { transformations: Object.fromEntries(next) }), key);
  return (
    <div className="field" data-testid="transformations">
      <span className="field-label">Assignments (in order)</span>
      <div className="help">{HELP.transformations}</div>
      <IssueLines issues={all.filter((i) => !i.location.rest)} />
      {entries.map(([name, value], index) => (
        <div key={index}>
          <div className="row">
            <input
              className="variable"
              value={name}
              placeholder="variable"
              data-testid={`assign-name-${index}`}
              onChange={(e) => {
                if (entries.some(([k], i) => i !== index && k === e.target.value)) return;
                write(entries.map((entry, i) => (i === index ? [e.target.value, entry[1]] : entry)), `${step.id}:assign-name:${index}`);
              }}
            />
            <span>=</span>
            <LiteralInput
              value={value}
              placeholder="${expression} or JSON"
              testId={`assign-value-${index}`}
              onChange={(v) => write(entries.map((entry, i) => (i === index ? [entry[0], v] : entry)), `${step.id}:assign-value:${index}`)}
            />
            <button title="Remove" onClick={() => write(entries.filter((_, i) => i !== index))}>
              ✕
            </button>
          </div>
          <IssueLines issues={all.filter((i) => i.location.rest === name)} text={typeof value === "string" ? value : undefined} />
        </div>
      ))}
      <button
        data-testid="add-assignment"
        onClick={() => {
          let n = entries.length + 1;
          while (entries.some(([k]) => k === `var${n}`)) n++;
          write([...entries, [`var${n}`, ""]]);
        }}
      >
        + Assignment
      </button>
    </div>
  );
}

function ParallelEditor({ step, definition, issues, edit }: { step: Step; definition: WorkflowDefinition; issues: LocatedIssue[]; edit: Edit }) {
  const branches = step.parallelNextSteps ?? [];
  const all = fieldIssues(issues, step.id, "parallelNextSteps");
  const write = (next: string[]) => edit((d) => updateStep(d, step.id, { parallelNextSteps: next }));
  return (
    <>
      <div className="field" data-testid="branches">
        <span className="field-label">Branches (in start order)</span>
        <div className="help">{HELP.parallelNextSteps}</div>
        <IssueLines issues={all.filter((i) => i.location.index === undefined)} />
        {branches.map((target, index) => (
          <div key={index}>
            <div className="row">
              <span className="order">{index + 1}.</span>
              <StepSelect value={target} definition={definition} exclude={step.id} testId={`branch-${index}`} onChange={(v) => write(branches.map((b, i) => (i === index ? v : b)))} />
              <button disabled={index === 0} onClick={() => write(swap(branches, index, index - 1))}>
                ↑
              </button>
              <button disabled={index === branches.length - 1} onClick={() => write(swap(branches, index, index + 1))}>
                ↓
              </button>
              <button title="Remove" onClick={() => write(branches.filter((_, i) => i !== index))}>
                ✕
              </button>
            </div>
            <IssueLines issues={all.filter((i) => i.location.index === index)} />
          </div>
        ))}
        <button onClick={() => write([...branches, ""])} data-testid="add-branch">
          + Branch
        </button>
      </div>
      <Field label="Join step" help={HELP.joinStep} issues={fieldIssues(issues, step.id, "joinStep")}>
        <StepSelect value={step.joinStep} definition={definition} only="JOIN_GATEWAY" testId="prop-joinStep" onChange={(v) => edit((d) => updateStep(d, step.id, { joinStep: v }))} />
      </Field>
    </>
  );
}

function swap<T>(list: T[], a: number, b: number): T[] {
  const out = [...list];
  [out[a], out[b]] = [out[b], out[a]];
  return out;
}

const HIT_POLICIES = ["U", "A", "F", "R", "C", "C+", "C#", "C<", "C>"];
const AGGREGATIONS = ["SUM", "COUNT", "MIN", "MAX"];

function DecisionTableEditor({ step, issues, edit }: { step: Step; issues: LocatedIssue[]; edit: Edit }) {
  const inputs = step.inputs ?? [];
  const outputs = step.outputs ?? [];
  const rules = step.rules ?? [];
  const set = (patch: Partial<Step>, key?: string) => edit((d) => updateStep(d, step.id, patch), key);
  const setRule = (index: number, rule: DecisionTableRule, key?: string) => set({ rules: rules.map((r, i) => (i === index ? rule : r)) }, key);
  const tableIssues = issues.filter(
    (i) => i.location.stepId === step.id && ["inputs", "outputs", "rules", "hitPolicy", "aggregation"].includes(i.location.field ?? ""),
  );
  return (
    <>
      <div className="row">
        <Field label="Hit policy" help={HELP.hitPolicy}>
          <select value={step.hitPolicy ?? "U"} onChange={(e) => set({ hitPolicy: e.target.value })} data-testid="prop-hitPolicy">
            {HIT_POLICIES.map((p) => (
              <option key={p}>{p}</option>
            ))}
          </select>
        </Field>
        <Field label="Aggregation" help={HELP.aggregation}>
          <select value={step.aggregation ?? ""} onChange={(e) => set({ aggregation: e.target.value || undefined })} disabled={step.hitPolicy !== "C" && !step.aggregation}>
            <option value="">—</option>
            {AGGREGATIONS.map((a) => (
              <option key={a}>{a}</option>
            ))}
          </select>
        </Field>
      </div>
      <div className="field">
        <span className="field-label">Rules</span>
        <div className="help">{HELP.rules}</div>
        <div className="grid-scroll">
          <table className="dt-grid" data-testid="decision-table">
            <thead>
              <tr>
                <th>#</th>
                {inputs.map((input, c) => (
                  <th key={`i${c}`} className="dt-input">
                    <input
                      value={input.expression ?? ""}
                      placeholder="input expression"
                      data-testid={`dt-input-${c}`}
                      onChange={(e) => set({ inputs: inputs.map((x, i) => (i === c ? { ...x, expression: e.target.value } : x)) }, `${step.id}:dt-in:${c}`)}
                    />
                    <button
                      title="Remove input column"
                      disabled={inputs.length <= 1}
                      onClick={() =>
                        set({ inputs: inputs.filter((_, i) => i !== c), rules: rules.map((r) => ({ ...r, inputEntries: r.inputEntries.filter((_, i) => i !== c) })) })
                      }
                    >
                      ✕
                    </button>
                  </th>
                ))}
                {outputs.map((output, c) => (
                  <th key={`o${c}`} className="dt-output">
                    <input
                      value={output.name ?? ""}
                      placeholder="output variable"
                      data-testid={`dt-output-${c}`}
                      onChange={(e) => set({ outputs: outputs.map((x, i) => (i === c ? { ...x, name: e.target.value } : x)) }, `${step.id}:dt-out:${c}`)}
                    />
                    <button
                      title="Remove output column"
                      disabled={outputs.length <= 1}
                      onClick={() =>
                        set({ outputs: outputs.filter((_, i) => i !== c), rules: rules.map((r) => ({ ...r, outputEntries: r.outputEntries.filter((_, i) => i !== c) })) })
                      }
                    >
                      ✕
                    </button>
                  </th>
                ))}
                <th />
              </tr>
            </thead>
            <tbody>
              {rules.map((rule, r) => (
                <tr key={r}>
                  <td>{r + 1}</td>
                  {inputs.map((_, c) => (
                    <td key={`i${c}`}>
                      <input
                        value={rule.inputEntries?.[c] ?? ""}
                        data-testid={`dt-cell-${r}-in-${c}`}
                        onChange={(e) =>
                          setRule(r, { ...rule, inputEntries: inputs.map((_, i) => (i === c ? e.target.value : (rule.inputEntries?.[i] ?? "-"))) }, `${step.id}:dt:${r}:${c}`)
                        }
                      />
                    </td>
                  ))}
                  {outputs.map((_, c) => (
                    <td key={`o${c}`}>
                      <LiteralInput
                        value={rule.outputEntries?.[c] ?? null}
                        testId={`dt-cell-${r}-out-${c}`}
                        onChange={(v) =>
                          setRule(r, { ...rule, outputEntries: outputs.map((_, i) => (i === c ? v : (rule.outputEntries?.[i] ?? null))) }, `${step.id}:dt:${r}:o${c}`)
                        }
                      />
                    </td>
                  ))}
                  <td>
                    <button disabled={r === 0} onClick={() => set({ rules: swap(rules, r, r - 1) })} title="Earlier">
                      ↑
                    </button>
                    <button disabled={rules.length <= 1} onClick={() => set({ rules: rules.filter((_, i) => i !== r) })} title="Remove rule">
                      ✕
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        <div className="row">
          <button data-testid="dt-add-rule" onClick={() => set({ rules: [...rules, { inputEntries: inputs.map(() => "-"), outputEntries: outputs.map(() => null) }] })}>
            + Rule
          </button>
          <button
            onClick={() => set({ inputs: [...inputs, { expression: "" }], rules: rules.map((r) => ({ ...r, inputEntries: [...r.inputEntries, "-"] })) })}
          >
            + Input
          </button>
          <button
            onClick={() => set({ outputs: [...outputs, { name: "" }], rules: rules.map((r) => ({ ...r, outputEntries: [...r.outputEntries, null] })) })}
          >
            + Output
          </button>
        </div>
        <IssueLines issues={tableIssues} />
      </div>
      <details className="field dt-details">
        <summary className="field-label">Column and rule details (ids, labels, defaults, descriptions)</summary>
        {inputs.map((input, c) => (
          <div className="row" key={`id${c}`}>
            <span className="dt-tag">in {c + 1}</span>
            <input
              placeholder="id"
              value={input.id ?? ""}
              onChange={(e) => set({ inputs: inputs.map((x, i) => (i === c ? { ...x, id: e.target.value || undefined } : x)) }, `${step.id}:dt-in-id:${c}`)}
            />
            <input
              placeholder="label"
              value={input.label ?? ""}
              onChange={(e) => set({ inputs: inputs.map((x, i) => (i === c ? { ...x, label: e.target.value || undefined } : x)) }, `${step.id}:dt-in-label:${c}`)}
            />
          </div>
        ))}
        {outputs.map((output, c) => (
          <div className="row" key={`od${c}`}>
            <span className="dt-tag">out {c + 1}</span>
            <input
              placeholder="label"
              value={output.label ?? ""}
              onChange={(e) => set({ outputs: outputs.map((x, i) => (i === c ? { ...x, label: e.target.value || undefined } : x)) }, `${step.id}:dt-out-label:${c}`)}
            />
            <label className="inline" title="Absent is not null: without a default, no match leaves the output unset (or fails, for U/A/F)">
              <input
                type="checkbox"
                checked={"defaultValue" in output}
                data-testid={`dt-default-on-${c}`}
                onChange={(e) =>
                  set({
                    outputs: outputs.map((x, i) => {
                      if (i !== c) return x;
                      const { defaultValue: _omit, ...rest } = x;
                      void _omit;
                      return e.target.checked ? { ...rest, defaultValue: null } : rest;
                    }),
                  })
                }
              />
              default
            </label>
            {"defaultValue" in output ? (
              <LiteralInput
                value={output.defaultValue}
                testId={`dt-default-${c}`}
                onChange={(v) => set({ outputs: outputs.map((x, i) => (i === c ? { ...x, defaultValue: v } : x)) }, `${step.id}:dt-default:${c}`)}
              />
            ) : null}
          </div>
        ))}
        {rules.map((rule, r) => (
          <div className="row" key={`rd${r}`}>
            <span className="dt-tag">rule {r + 1}</span>
            <input
              placeholder="id"
              value={rule.id ?? ""}
              onChange={(e) => setRule(r, { ...rule, id: e.target.value || undefined }, `${step.id}:dt-rule-id:${r}`)}
            />
            <input
              placeholder="description"
              value={rule.description ?? ""}
              onChange={(e) => setRule(r, { ...rule, description: e.target.value || undefined }, `${step.id}:dt-rule-desc:${r}`)}
            />
          </div>
        ))}
      </details>
    </>
  );
}

// -- the panels ------------------------------------------------------------------------------

function StepProperties({ step, definition, issues, edit, rename, onDelete }: { step: Step } & Omit<PanelProps, "selection" | "onSelect">) {
  const type = String(step.type);
  const text = (field: keyof Step & string, label: string, testId = `prop-${field}`) => (
    <Field label={label} help={HELP[field]} issues={fieldIssues(issues, step.id, field)}>
      <input
        value={typeof step[field] === "string" ? (step[field] as string) : ""}
        data-testid={testId}
        onChange={(e) => edit((d) => updateStep(d, step.id, { [field]: e.target.value }), `${step.id}:${field}`)}
      />
    </Field>
  );
  const next = (
    <Field label="Next step" help={HELP.nextStep} issues={fieldIssues(issues, step.id, "nextStep")}>
      <StepSelect
        value={step.nextStep}
        definition={definition}
        testId="prop-nextStep"
        onChange={(v) =>
          edit((d) => updateStep(d, step.id, { nextStep: v || (type === "SERVICE_TASK" || type === "USER_TASK" ? undefined : "") }))
        }
      />
    </Field>
  );
  const stepWide = issues.filter((i) => i.location.stepId === step.id && !i.location.field);
  const entry = definition.steps[0]?.id === step.id;
  return (
    <div className="properties" data-testid="step-properties" data-step-id={step.id}>
      <div className="panel-title">
        {isStepType(type) ? STEP_TYPE_LABELS[type] : type}
        {entry ? <span className="entry-tag">entry step</span> : null}
      </div>
      <IssueLines issues={stepWide} />
      <Field label="Id" help={HELP.id} issues={fieldIssues(issues, step.id, "id")}>
        <IdInput id={step.id} onRename={(to) => rename(step.id, to)} />
      </Field>
      {text("name", "Name")}
      {text("description", "Description")}
      {type === "SERVICE_TASK" || type === "USER_TASK" ? text("jobType", "Job type") : null}
      {type === "SERVICE_TASK" ? (
        <>
          <Field label="Retry count" help={HELP.retryCount} issues={fieldIssues(issues, step.id, "retryCount")}>
            <input
              type="number"
              min={0}
              value={step.retryCount ?? ""}
              data-testid="prop-retryCount"
              onChange={(e) =>
                edit((d) => updateStep(d, step.id, { retryCount: e.target.value === "" ? undefined : Number(e.target.value) }), `${step.id}:retry`)
              }
            />
          </Field>
          {text("delegateClass", "Delegate class")}
        </>
      ) : null}
      {["SERVICE_TASK", "USER_TASK", "WAIT", "TRANSFORMATION", "JOIN_GATEWAY", "DECISION_TABLE"].includes(type) ? next : null}
      {type === "DECISION" ? <ConditionsEditor step={step} definition={definition} issues={issues} edit={edit} inline={false} /> : null}
      {["SERVICE_TASK", "USER_TASK", "WAIT"].includes(type) ? (
        step.conditionalNextSteps ? (
          <ConditionsEditor step={step} definition={definition} issues={issues} edit={edit} inline />
        ) : (
          <button className="link-button" onClick={() => edit((d) => addCondition(d, step.id))} data-testid="add-inline-routing">
            + Inline routing (route on conditions after this step)
          </button>
        )
      ) : null}
      {type === "TRANSFORMATION" ? <TransformationsEditor step={step} issues={issues} edit={edit} /> : null}
      {type === "PARALLEL_GATEWAY" ? <ParallelEditor step={step} definition={definition} issues={issues} edit={edit} /> : null}
      {type === "DECISION_TABLE" ? <DecisionTableEditor step={step} issues={issues} edit={edit} /> : null}
      {BOUNDARY_PARENTS.includes(type) ? <BoundaryEditor step={step} definition={definition} issues={issues} edit={edit} /> : null}
      <div className="row actions">
        {!entry ? (
          <button onClick={() => edit((d) => makeEntry(d, step.id))} data-testid="make-entry">
            Make entry step
          </button>
        ) : null}
        <button onClick={onDelete} data-testid="delete-step">
          Delete step
        </button>
      </div>
    </div>
  );
}

function EdgeProperties({ edgeId, definition, issues, edit, onSelect }: { edgeId: string } & Omit<PanelProps, "selection" | "rename" | "onDelete">) {
  const graph = definitionToGraph(definition);
  const edge = graph.edges.find((e) => e.id === edgeId);
  const parsed = parseEdgeId(edgeId);
  if (!edge || !parsed) return <div className="empty">The connection no longer exists.</div>;
  const step = findStep(definition, edge.source)!;
  const kinds: Record<string, string> = {
    next: "Next step",
    condition: "Condition",
    parallel: "Parallel branch",
    timer: "Interrupting timer",
    "timer-non-interrupting": "Non-interrupting timer",
  };
  return (
    <div className="properties" data-testid="edge-properties">
      <div className="panel-title">{kinds[edge.kind]}</div>
      <div className="field">
        <button className="link" onClick={() => onSelect({ kind: "step", id: edge.source })}>
          {edge.source}
        </button>{" "}
        →{" "}
        <button className="link" onClick={() => onSelect({ kind: "step", id: edge.target })}>
          {edge.target}
        </button>
      </div>
      {edge.kind === "condition" ? (
        <ConditionsEditor step={step} definition={definition} issues={issues} edit={edit} inline={step.type !== "DECISION"} />
      ) : edge.kind.startsWith("timer") ? (
        <BoundaryEditor step={step} definition={definition} issues={issues} edit={edit} />
      ) : (
        <div className="help">{edgeLabel(edge) ?? ""}</div>
      )}
      <button
        onClick={() => {
          edit((d) => removeEdge(d, edgeId));
          onSelect(null);
        }}
        data-testid="delete-edge"
      >
        Delete connection
      </button>
    </div>
  );
}

function DefinitionProperties({ definition, issues, edit }: Pick<PanelProps, "definition" | "issues" | "edit">) {
  const top = (field: string) => issues.filter((i) => !i.location.stepId && i.location.field === field);
  const [metadata, setMetadata] = useState(() => (definition.metadata === undefined ? "" : JSON.stringify(definition.metadata, null, 2)));
  const [metadataError, setMetadataError] = useState("");
  const general = issues.filter((i) => !i.location.stepId && !["id", "name", "nextWorkflowId", "autoStartNextWorkflow"].includes(i.location.field ?? ""));
  return (
    <div className="properties" data-testid="definition-properties">
      <div className="panel-title">Definition</div>
      <IssueLines issues={general} />
      <Field label="Id" help={HELP.definitionId} issues={top("id")}>
        <input value={definition.id ?? ""} data-testid="def-id" onChange={(e) => edit((d) => updateDefinition(d, { id: e.target.value }), "def:id")} />
      </Field>
      <Field label="Name" issues={top("name")}>
        <input value={definition.name ?? ""} data-testid="def-name" onChange={(e) => edit((d) => updateDefinition(d, { name: e.target.value }), "def:name")} />
      </Field>
      <Field label="Description">
        <textarea
          rows={2}
          value={definition.description ?? ""}
          onChange={(e) => edit((d) => updateDefinition(d, { description: e.target.value || undefined }), "def:description")}
        />
      </Field>
      <Field label="Start the next workflow on completion" help={HELP.autoStartNextWorkflow} issues={top("autoStartNextWorkflow")}>
        <input
          type="checkbox"
          checked={Boolean(definition.autoStartNextWorkflow)}
          onChange={(e) => edit((d) => updateDefinition(d, { autoStartNextWorkflow: e.target.checked || undefined }))}
        />
      </Field>
      <Field label="Next workflow id" help={HELP.nextWorkflowId} issues={top("nextWorkflowId")}>
        <input
          value={definition.nextWorkflowId ?? ""}
          onChange={(e) => edit((d) => updateDefinition(d, { nextWorkflowId: e.target.value || undefined }), "def:next")}
        />
      </Field>
      <Field label="Metadata (JSON)" help={HELP.metadata}>
        <textarea
          rows={3}
          value={metadata}
          onChange={(e) => {
            setMetadata(e.target.value);
            if (!e.target.value.trim()) {
              setMetadataError("");
              edit((d) => updateDefinition(d, { metadata: undefined }), "def:metadata");
              return;
            }
            try {
              const value: unknown = JSON.parse(e.target.value);
              setMetadataError("");
              edit((d) => updateDefinition(d, { metadata: value }), "def:metadata");
            } catch (error) {
              setMetadataError(error instanceof Error ? error.message : String(error));
            }
          }}
        />
      </Field>
      {metadataError ? <div className="field-error">Not applied: {metadataError}</div> : null}
      <div className="help">Select a step or a connection on the canvas to edit it.</div>
    </div>
  );
}

export function PropertyPanel(props: PanelProps) {
  const { selection, definition } = props;
  if (selection?.kind === "step") {
    const step = findStep(definition, selection.id);
    if (step) return <StepProperties key={step.id} step={step} {...props} />;
  }
  if (selection?.kind === "edge") return <EdgeProperties edgeId={selection.id} {...props} />;
  return <DefinitionProperties key={String(definition.id)} definition={definition} issues={props.issues} edit={props.edit} />;
}
