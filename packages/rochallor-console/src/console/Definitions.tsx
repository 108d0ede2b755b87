// Definitions: list, versions with their instances per status, side-by-side diff of two
// versions, start an instance, open a version in the modeller.
import { useState } from "react";
import { api } from "../shared/api";
import { buildHash, type Route } from "../shell/router";
import { consoleApi, STATUSES } from "./api";
import { ConfirmDialog } from "./ConfirmDialog";
import { diffLines } from "./diff";
import { when } from "./format";
import { JsonObjectInput, parseObject } from "./JsonForm";
import { usePolling } from "./usePolling";

export function Definitions({ route }: { route: Route }) {
  const selected = route.segments[0];
  const [keyword, setKeyword] = useState("");
  const list = usePolling(() => api.listDefinitions(keyword, 0, 200), [keyword], false);
  return (
    <div className="page console split" data-testid="definitions-page">
      <aside className="side-list">
        <h2>Definitions</h2>
        <input placeholder="search" value={keyword} onChange={(e) => setKeyword(e.target.value)} data-testid="definition-search" />
        <ul>
          {(list.data?.items ?? []).map((d) => (
            <li key={d.id} className={d.id === selected ? "selected" : ""}>
              <a href={buildHash("definitions", [d.id])} data-testid={`definition-${d.id}`}>
                <b>{d.name}</b>
                <br />
                <span className="muted small">
                  {d.id} · v{d.version}
                </span>
              </a>
            </li>
          ))}
        </ul>
      </aside>
      <section className="main-pane">
        {selected ? <DefinitionVersions key={selected} id={selected} route={route} /> : <p className="muted">Pick a definition.</p>}
      </section>
    </div>
  );
}

function DefinitionVersions({ id, route }: { id: string; route: Route }) {
  const versions = usePolling(() => consoleApi.versions(id), [id], true, 5000);
  const items = versions.data?.items ?? [];
  const latest = items.length ? items[items.length - 1].version : 0;
  const left = Number(route.query.get("left") ?? "") || Math.max(latest - 1, 1);
  const right = Number(route.query.get("right") ?? "") || latest;
  const [starting, setStarting] = useState<number | null>(null);
  const [variables, setVariables] = useState("{}");
  const [businessKey, setBusinessKey] = useState("");
  const [started, setStarted] = useState<string | null>(null);
  const parsed = parseObject(variables);
  if (versions.error) return <p className="error-text">{versions.error}</p>;
  if (!items.length) return <p className="muted">Loading…</p>;
  const setPair = (l: number, r: number) => {
    window.location.hash = buildHash("definitions", [id], { left: String(l), right: String(r) });
  };
  return (
    <div data-testid="definition-versions">
      <h2>
        {items[items.length - 1].name} <span className="muted mono">{id}</span>
      </h2>
      {started ? (
        <p className="ops-notice" data-testid="started-notice">
          Started <a href={buildHash("instances", [started])}>{started}</a>
        </p>
      ) : null}
      <table className="grid" data-testid="versions-table">
        <thead>
          <tr>
            <th>Version</th>
            <th>Uploaded</th>
            {STATUSES.map((s) => (
              <th key={s}>{s}</th>
            ))}
            <th />
          </tr>
        </thead>
        <tbody>
          {items.map((v) => (
            <tr key={v.version} data-testid={`version-${v.version}`}>
              <td>
                <b>v{v.version}</b>
              </td>
              <td>{when(v.uploadedAt)}</td>
              {STATUSES.map((s) => (
                <td key={s}>
                  {v.instances[s] ? (
                    <a
                      href={buildHash("instances", [], { definitionId: id, definitionVersion: String(v.version), status: s })}
                      data-testid={`version-${v.version}-${s}`}
                    >
                      {v.instances[s]}
                    </a>
                  ) : (
                    <span className="muted">0</span>
                  )}
                </td>
              ))}
              <td className="row-actions">
                <a href={buildHash("modeller", [id, String(v.version)])} data-testid={`open-modeller-${v.version}`}>
                  Open in modeller
                </a>
                <button onClick={() => setStarting(v.version)} data-testid={`start-${v.version}`}>
                  Start instance
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h3>Compare versions</h3>
      <div className="diff-pick">
        <select value={left} onChange={(e) => setPair(Number(e.target.value), right)} data-testid="diff-left">
          {items.map((v) => (
            <option key={v.version} value={v.version}>
              v{v.version}
            </option>
          ))}
        </select>
        <span>↔</span>
        <select value={right} onChange={(e) => setPair(left, Number(e.target.value))} data-testid="diff-right">
          {items.map((v) => (
            <option key={v.version} value={v.version}>
              v{v.version}
            </option>
          ))}
        </select>
      </div>
      <VersionDiff id={id} left={left} right={right} />
      {starting !== null ? (
        <ConfirmDialog
          title={`Start an instance of ${id} v${starting}?`}
          confirmLabel="Start"
          invalid={parsed.error ? `Variables ${parsed.error}` : null}
          onConfirm={async () => {
            const instance = await api.startInstance(id, parsed.value ?? {}, starting, businessKey || undefined);
            setStarted(instance.id);
            versions.reload();
          }}
          onClose={() => setStarting(null)}
        >
          <label>
            Variables (JSON object)
            <JsonObjectInput text={variables} onText={setVariables} testId="start-variables" rows={4} />
          </label>
          <label>
            Business key
            <input value={businessKey} onChange={(e) => setBusinessKey(e.target.value)} data-testid="start-business-key" />
          </label>
        </ConfirmDialog>
      ) : null}
    </div>
  );
}

function VersionDiff({ id, left, right }: { id: string; left: number; right: number }) {
  const docs = usePolling(
    () => Promise.all([api.getDefinition(id, left), api.getDefinition(id, right)]),
    [id, left, right],
    false,
  );
  if (docs.error) return <p className="error-text">{docs.error}</p>;
  if (!docs.data) return <p className="muted">Loading…</p>;
  const rows = diffLines(JSON.stringify(docs.data[0], null, 2), JSON.stringify(docs.data[1], null, 2));
  const changes = rows.filter((r) => r.kind !== "same").length;
  return (
    <div>
      <p className="muted" data-testid="diff-summary">
        {changes === 0 ? "The two versions are identical." : `${changes} changed lines`}
      </p>
      <table className="diff" data-testid="diff-table">
        <thead>
          <tr>
            <th colSpan={2}>v{left}</th>
            <th colSpan={2}>v{right}</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row, n) => (
            <tr key={n} className={`diff-${row.kind}`}>
              <td className="line-no">{row.leftNo ?? ""}</td>
              <td className="code left">{row.left ?? ""}</td>
              <td className="line-no">{row.rightNo ?? ""}</td>
              <td className="code right">{row.right ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
