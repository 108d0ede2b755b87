// A collapsible, read-only JSON tree.
import { useState } from "react";

function summary(value: unknown): string {
  if (Array.isArray(value)) return `[${value.length}]`;
  if (value && typeof value === "object") return `{${Object.keys(value).length}}`;
  return "";
}

function Leaf({ value }: { value: unknown }) {
  if (value === null) return <span className="json-null">null</span>;
  if (typeof value === "string") return <span className="json-string">"{value}"</span>;
  if (typeof value === "number") return <span className="json-number">{value}</span>;
  if (typeof value === "boolean") return <span className="json-boolean">{String(value)}</span>;
  return <span>{JSON.stringify(value)}</span>;
}

function Node({ name, value, depth }: { name: string | null; value: unknown; depth: number }) {
  const nested = value !== null && typeof value === "object";
  const [open, setOpen] = useState(depth < 2);
  const entries: [string, unknown][] = nested
    ? Array.isArray(value)
      ? value.map((v, i) => [String(i), v])
      : Object.entries(value as Record<string, unknown>)
    : [];
  return (
    <li>
      {nested ? (
        <button className="json-toggle" onClick={() => setOpen(!open)} aria-expanded={open}>
          {open ? "▾" : "▸"}
        </button>
      ) : (
        <span className="json-toggle-space" />
      )}
      {name !== null ? <span className="json-key">{name}: </span> : null}
      {nested ? <span className="json-summary">{summary(value)}</span> : <Leaf value={value} />}
      {nested && open ? (
        <ul className="json-tree">
          {entries.map(([k, v]) => (
            <Node key={k} name={k} value={v} depth={depth + 1} />
          ))}
        </ul>
      ) : null}
    </li>
  );
}

export function JsonTree({ value, testId }: { value: unknown; testId?: string }) {
  return (
    <ul className="json-tree json-root" data-testid={testId}>
      <Node name={null} value={value} depth={0} />
    </ul>
  );
}
