// Engine integration: browse definitions and versions; start a test instance.
import { useEffect, useState } from "react";
import { api, type DefinitionSummary, type Instance } from "../shared/api";
import { sections } from "../shell/sections";

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function EngineDialog({ onOpen, onClose }: { onOpen: (id: string, version?: number) => void; onClose: () => void }) {
  const [keyword, setKeyword] = useState("");
  const [items, setItems] = useState<DefinitionSummary[] | null>(null);
  const [total, setTotal] = useState(0);
  const [error, setError] = useState("");
  const [expanded, setExpanded] = useState<string | null>(null);

  useEffect(() => {
    const timer = window.setTimeout(() => {
      api
        .listDefinitions(keyword, 0, 100)
        .then((page) => {
          setItems(page.items);
          setTotal(page.total);
          setError("");
        })
        .catch((e: unknown) => setError(message(e)));
    }, 150);
    return () => window.clearTimeout(timer);
  }, [keyword]);

  return (
    <div className="dialog-backdrop" onClick={onClose}>
      <div className="dialog" role="dialog" aria-label="Open a definition from the engine" onClick={(e) => e.stopPropagation()}>
        <div className="dialog-title">
          Definitions on the engine
          <button onClick={onClose} aria-label="Close">
            ✕
          </button>
        </div>
        <input
          autoFocus
          placeholder="Filter by id or name"
          value={keyword}
          onChange={(e) => setKeyword(e.target.value)}
          data-testid="engine-filter"
        />
        {error ? <div className="field-error">{error}</div> : null}
        {items === null ? <div className="empty">Loading…</div> : null}
        {items && items.length === 0 ? <div className="empty">No definitions.</div> : null}
        <ul className="definition-list" data-testid="engine-definitions">
          {items?.map((item) => (
            <li key={item.id} data-testid="engine-definition" data-definition-id={item.id}>
              <div className="definition-row">
                <button className="link" onClick={() => setExpanded(expanded === item.id ? null : item.id)} title="Versions">
                  {expanded === item.id ? "▾" : "▸"}
                </button>
                <span className="definition-id">{item.id}</span>
                <span className="definition-name">{item.name}</span>
                <span className="definition-version">v{item.version}</span>
                <button onClick={() => onOpen(item.id)} data-testid="open-latest">
                  Open latest
                </button>
              </div>
              {expanded === item.id ? (
                <div className="versions">
                  {Array.from({ length: item.version }, (_, i) => item.version - i).map((v) => (
                    <button key={v} onClick={() => onOpen(item.id, v)} data-testid={`open-version-${v}`}>
                      v{v}
                    </button>
                  ))}
                </div>
              ) : null}
            </li>
          ))}
        </ul>
        {items && total > items.length ? <div className="empty">{total - items.length} more: narrow the filter.</div> : null}
      </div>
    </div>
  );
}

export function StartDialog({ definitionId, version, onClose }: { definitionId: string; version: number; onClose: () => void }) {
  const [variables, setVariables] = useState("{\n  \n}");
  const [businessKey, setBusinessKey] = useState("");
  const [error, setError] = useState("");
  const [instance, setInstance] = useState<Instance | null>(null);

  const start = async () => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(variables || "{}");
    } catch (e) {
      setError(`Variables are not JSON: ${message(e)}`);
      return;
    }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
      setError("Variables must be a JSON object");
      return;
    }
    try {
      setInstance(await api.startInstance(definitionId, parsed as Record<string, unknown>, version, businessKey || undefined));
      setError("");
    } catch (e) {
      setError(message(e));
    }
  };

  const refresh = async () => {
    if (!instance) return;
    try {
      setInstance(await api.getInstance(instance.id));
    } catch (e) {
      setError(message(e));
    }
  };

  return (
    <div className="dialog-backdrop" onClick={onClose}>
      <div className="dialog" role="dialog" aria-label="Start a test instance" onClick={(e) => e.stopPropagation()}>
        <div className="dialog-title">
          Start {definitionId} v{version}
          <button onClick={onClose} aria-label="Close">
            ✕
          </button>
        </div>
        <label>
          Variables (JSON object)
          <textarea rows={6} value={variables} onChange={(e) => setVariables(e.target.value)} data-testid="start-variables" />
        </label>
        <label>
          Business key (optional)
          <input value={businessKey} onChange={(e) => setBusinessKey(e.target.value)} />
        </label>
        <div className="dialog-actions">
          <button className="primary" onClick={() => void start()} data-testid="start-submit">
            Start
          </button>
          {instance ? (
            <button onClick={() => void refresh()} data-testid="start-refresh">
              Refresh
            </button>
          ) : null}
        </div>
        {error ? <div className="field-error" data-testid="start-error">{error}</div> : null}
        {instance ? (
          <div className="instance-result" data-testid="start-result">
            <div>
              Instance <code data-testid="instance-id">{instance.id}</code>: <b data-testid="instance-status">{instance.status}</b>
            </div>
            <div>At: {instance.currentStepIds.join(", ") || "—"}</div>
            {instance.failureReason ? <div className="field-error">{instance.failureReason}</div> : null}
            {sections.some((s) => s.id === "instances") ? (
              <a href={`#/instances/${encodeURIComponent(instance.id)}`}>Open in the console</a>
            ) : null}
          </div>
        ) : null}
      </div>
    </div>
  );
}
