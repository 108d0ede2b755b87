// A form built from a JSON object: one typed field per top-level key (text, number, checkbox,
// or JSON for objects, arrays and null), fields can be added, and the whole object can be
// edited as JSON instead. The value is always a JSON object.
import { useState } from "react";

type Kind = "string" | "number" | "boolean" | "json";

function kindOf(value: unknown): Kind {
  if (typeof value === "string") return "string";
  if (typeof value === "number") return "number";
  if (typeof value === "boolean") return "boolean";
  return "json";
}

export interface JsonFormProps {
  value: Record<string, unknown>;
  onChange: (value: Record<string, unknown>, error: string | null) => void;
  testId?: string;
}

export function JsonForm({ value, onChange, testId }: JsonFormProps) {
  const [asJson, setAsJson] = useState(false);
  const [text, setText] = useState(() => JSON.stringify(value, null, 2));
  const [jsonErrors, setJsonErrors] = useState<Record<string, string>>({});
  const [newKey, setNewKey] = useState("");
  const [drafts, setDrafts] = useState<Record<string, string>>({});

  const set = (key: string, next: unknown) => onChange({ ...value, [key]: next }, null);
  const remove = (key: string) => {
    const { [key]: _gone, ...rest } = value;
    onChange(rest, null);
  };

  if (asJson) {
    return (
      <div className="json-form" data-testid={testId}>
        <textarea
          className="json-text"
          rows={8}
          value={text}
          data-testid={testId ? `${testId}-json` : undefined}
          onChange={(e) => {
            setText(e.target.value);
            try {
              const parsed: unknown = JSON.parse(e.target.value || "{}");
              if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("must be a JSON object");
              onChange(parsed as Record<string, unknown>, null);
            } catch (exc) {
              onChange(value, `JSON: ${exc instanceof Error ? exc.message : String(exc)}`);
            }
          }}
        />
        <button onClick={() => setAsJson(false)}>Edit as form</button>
      </div>
    );
  }
  return (
    <div className="json-form" data-testid={testId}>
      <table className="form-table">
        <tbody>
          {Object.entries(value).map(([key, v]) => {
            const kind = kindOf(v);
            return (
              <tr key={key}>
                <th>
                  <label htmlFor={`field-${key}`}>{key}</label>
                </th>
                <td>
                  {kind === "boolean" ? (
                    <input
                      id={`field-${key}`}
                      type="checkbox"
                      checked={v as boolean}
                      data-testid={`field-${key}`}
                      onChange={(e) => set(key, e.target.checked)}
                    />
                  ) : kind === "number" ? (
                    <input
                      id={`field-${key}`}
                      type="number"
                      value={drafts[key] ?? String(v)}
                      data-testid={`field-${key}`}
                      onChange={(e) => {
                        setDrafts({ ...drafts, [key]: e.target.value });
                        const n = Number(e.target.value);
                        if (e.target.value !== "" && Number.isFinite(n)) set(key, n);
                      }}
                    />
                  ) : kind === "string" ? (
                    <input
                      id={`field-${key}`}
                      value={v as string}
                      data-testid={`field-${key}`}
                      onChange={(e) => set(key, e.target.value)}
                    />
                  ) : (
                    <>
                      <input
                        id={`field-${key}`}
                        className="mono"
                        defaultValue={JSON.stringify(v)}
                        data-testid={`field-${key}`}
                        onChange={(e) => {
                          try {
                            const parsed: unknown = JSON.parse(e.target.value);
                            setJsonErrors({ ...jsonErrors, [key]: "" });
                            set(key, parsed);
                          } catch {
                            setJsonErrors({ ...jsonErrors, [key]: "not JSON" });
                            onChange(value, `${key}: not JSON`);
                          }
                        }}
                      />
                      {jsonErrors[key] ? <span className="error-text"> {jsonErrors[key]}</span> : null}
                    </>
                  )}
                </td>
                <td>
                  <button title="Remove field" onClick={() => remove(key)}>
                    ✕
                  </button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <div className="form-add">
        <input
          placeholder="new field"
          value={newKey}
          data-testid={testId ? `${testId}-new-key` : undefined}
          onChange={(e) => setNewKey(e.target.value)}
        />
        {(["string", "number", "boolean", "json"] as Kind[]).map((kind) => (
          <button
            key={kind}
            disabled={!newKey || newKey in value}
            data-testid={testId ? `${testId}-add-${kind}` : undefined}
            onClick={() => {
              const initial = kind === "string" ? "" : kind === "number" ? 0 : kind === "boolean" ? false : {};
              set(newKey, initial);
              setNewKey("");
            }}
          >
            + {kind}
          </button>
        ))}
        <button
          onClick={() => {
            setText(JSON.stringify(value, null, 2));
            setAsJson(true);
          }}
        >
          Edit as JSON
        </button>
      </div>
    </div>
  );
}

/** A JSON object typed in a textarea (signal bodies, variable patches). */
export function JsonObjectInput({
  text,
  onText,
  testId,
  rows = 5,
}: {
  text: string;
  onText: (text: string) => void;
  testId?: string;
  rows?: number;
}) {
  return (
    <textarea className="json-text" rows={rows} value={text} data-testid={testId} onChange={(e) => onText(e.target.value)} />
  );
}

/** The object a JSON text holds, or the reason it is not one. Empty text is `{}`. */
export function parseObject(text: string): { value: Record<string, unknown> | null; error: string | null } {
  if (!text.trim()) return { value: {}, error: null };
  try {
    const parsed: unknown = JSON.parse(text);
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return { value: null, error: "must be a JSON object" };
    return { value: parsed as Record<string, unknown>, error: null };
  } catch (exc) {
    return { value: null, error: `not JSON: ${exc instanceof Error ? exc.message : String(exc)}` };
  }
}
