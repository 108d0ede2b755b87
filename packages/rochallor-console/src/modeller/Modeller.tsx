// The workflow modeller: palette, canvas, property panel, JSON view, live validation through
// the server's validator, import/export, and (with an engine) open/publish/start.
import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  ReactFlowProvider,
  useReactFlow,
  type Connection,
  type Edge,
  type EdgeChange,
  type NodeChange,
} from "@xyflow/react";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { api, ApiError, type Issue } from "../shared/api";
import type { StepType, WorkflowDefinition } from "../shared/definition";
import { useEngine } from "../shared/engine";
import { toFlowEdges, toFlowNodes } from "../shared/flow";
import { definitionToGraph, layoutGraph, nodeSize, type Positions } from "../shared/graph";
import { nodeTypes, type StepFlowNode } from "../shared/StepNode";
import type { Route } from "../shell/router";
import { EngineDialog, StartDialog } from "./EngineDialogs";
import { initHistory, push, redo, undo, type History } from "./history";
import { IssueList } from "./IssueList";
import { edgesWithIssues, issuesByStep, locateAll, type LocatedIssue } from "./issues";
import { JsonView } from "./JsonView";
import {
  addStep,
  connect,
  deleteStep,
  emptyDefinition,
  newStep,
  parseJson,
  removeEdge,
  renameStep,
  retargetEdge,
  type Selection,
  toJson,
} from "./model";
import "./modeller.css";
import { DRAG_TYPE, Palette } from "./Palette";
import { PropertyPanel } from "./PropertyPanel";

export interface Doc {
  definition: WorkflowDefinition;
  positions: Positions;
}


const DRAFT_KEY = "rochallor.modeller.draft";
const VALIDATE_DELAY_MS = 250;
const FIT = { padding: 0.15, maxZoom: 1.2, duration: 0 };

function layoutDoc(definition: WorkflowDefinition): Doc {
  return { definition, positions: layoutGraph(definitionToGraph(definition)) };
}

/** Positions for steps that have none (added in the JSON view): to the right of the drawing. */
function placeMissing(doc: Doc): Doc {
  const missing = doc.definition.steps.filter((s) => s && typeof s.id === "string" && !doc.positions[s.id]);
  if (missing.length === 0) return doc;
  const xs = Object.values(doc.positions).map((p) => p.x);
  const x = xs.length ? Math.max(...xs) + 240 : 40;
  const positions = { ...doc.positions };
  missing.forEach((s, i) => (positions[s.id] = { x, y: 40 + i * 110 }));
  return { ...doc, positions };
}

function loadDraft(): Doc | null {
  try {
    const raw = window.localStorage.getItem(DRAFT_KEY);
    if (!raw) return null;
    const draft = JSON.parse(raw) as Doc;
    return draft.definition && Array.isArray(draft.definition.steps) ? draft : null;
  } catch {
    return null;
  }
}

function fileName(definition: WorkflowDefinition): string {
  const base = String(definition.id || "workflow").replace(/[^A-Za-z0-9_-]+/g, "_");
  return `${base}.json`;
}

export function Modeller({ route }: { route: Route }) {
  return (
    <ReactFlowProvider>
      <ModellerCanvas route={route} />
    </ReactFlowProvider>
  );
}

const MINIMAP_COLORS: Record<string, string> = {
  SERVICE_TASK: "#93c5fd",
  USER_TASK: "#c4b5fd",
  DECISION: "#fcd34d",
  DECISION_TABLE: "#fdba74",
  TRANSFORMATION: "#5eead4",
  WAIT: "#cbd5e1",
  PARALLEL_GATEWAY: "#86efac",
  JOIN_GATEWAY: "#6ee7b7",
  END: "#fca5a5",
};

function minimapColor(node: StepFlowNode): string {
  return MINIMAP_COLORS[String(node.data.step.type)] ?? "#e5e7eb";
}

function isTyping(target: EventTarget | null): boolean {
  return target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

function ModellerCanvas({ route }: { route: Route }) {
  const { online } = useEngine();
  const flow = useReactFlow();
  const [history, setHistory] = useState<History<Doc>>(() => initHistory(loadDraft() ?? { definition: emptyDefinition(), positions: {} }));
  const doc = history.present;
  const definition = doc.definition;
  const [selection, setSelection] = useState<Selection>(null);
  const [issues, setIssues] = useState<LocatedIssue[]>([]);
  const [validation, setValidation] = useState<"idle" | "checking" | "failed">("idle");
  const [validationError, setValidationError] = useState<string>("");
  const [tab, setTab] = useState<"properties" | "json">("properties");
  const [jsonText, setJsonText] = useState(() => toJson(definition));
  const [jsonError, setJsonError] = useState<{ message: string; position?: number } | null>(null);
  const [notice, setNotice] = useState<{ kind: "ok" | "error"; text: string } | null>(null);
  const [dialog, setDialog] = useState<"open" | "start" | null>(null);
  const [published, setPublished] = useState<{ id: string; version: number } | null>(null);
  const lastEdit = useRef<{ key: string; at: number } | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const canvasRef = useRef<HTMLDivElement>(null);

  // -- edits and history ------------------------------------------------------------------
  const commit = useCallback((next: Doc | ((doc: Doc) => Doc), coalesceKey?: string) => {
    const now = Date.now();
    const previous = lastEdit.current;
    const coalesce = Boolean(coalesceKey && previous && previous.key === coalesceKey && now - previous.at < 1500);
    lastEdit.current = coalesceKey ? { key: coalesceKey, at: now } : null;
    // An edit made elsewhere than in the JSON view replaces a JSON text that did not parse.
    if (coalesceKey !== "json") setJsonError(null);
    setHistory((h) => push(h, typeof next === "function" ? next(h.present) : next, coalesce));
  }, []);

  const edit = useCallback(
    (fn: (definition: WorkflowDefinition) => WorkflowDefinition, coalesceKey?: string) =>
      commit((d) => placeMissing({ ...d, definition: fn(d.definition) }), coalesceKey),
    [commit],
  );

  const doUndo = useCallback(() => {
    setJsonError(null);
    setHistory((h) => undo(h));
  }, []);
  const doRedo = useCallback(() => {
    setJsonError(null);
    setHistory((h) => redo(h));
  }, []);

  // The JSON view follows the document, except while the user is typing in it (their text,
  // formatting included, stays as typed) and while that text does not parse.
  const typedInJson = useRef(false);
  useEffect(() => {
    if (jsonError) return;
    if (typedInJson.current) {
      typedInJson.current = false;
      return;
    }
    setJsonText(toJson(definition));
  }, [definition, jsonError]);

  useEffect(() => {
    try {
      window.localStorage.setItem(DRAFT_KEY, JSON.stringify(doc));
    } catch {
      /* storage full or disabled: drafts are a convenience */
    }
  }, [doc]);

  // -- live validation (the server's validator; no rules here) -----------------------------
  const validationSeq = useRef(0);
  const textToValidate = jsonError ? jsonText : toJson(definition);
  useEffect(() => {
    const seq = ++validationSeq.current;
    setValidation("checking");
    const timer = window.setTimeout(() => {
      api
        .validateDefinition(textToValidate)
        .then((result) => {
          if (seq !== validationSeq.current) return;
          const all: Issue[] = [...result.errors, ...result.warnings.map((w) => ({ ...w, severity: "warning" }))];
          setIssues(locateAll(definition, all));
          setValidation("idle");
          setValidationError("");
        })
        .catch((error: unknown) => {
          if (seq !== validationSeq.current) return;
          setValidation("failed");
          setValidationError(error instanceof Error ? error.message : String(error));
        });
    }, VALIDATE_DELAY_MS);
    return () => window.clearTimeout(timer);
  }, [textToValidate]);

  const errorCount = issues.filter((i) => i.severity !== "warning").length;
  const warningCount = issues.length - errorCount;

  // -- canvas model ------------------------------------------------------------------------
  const graph = useMemo(() => definitionToGraph(definition), [definition]);
  const decorations = useMemo(
    () => ({ issues: issuesByStep(issues), edgeIssues: edgesWithIssues(issues) }),
    [issues],
  );
  const selectedStep = selection?.kind === "step" ? selection.id : null;
  const selectedEdge = selection?.kind === "edge" ? selection.id : null;
  const nodes = useMemo(
    () => toFlowNodes(graph, doc.positions, decorations, selectedStep),
    [graph, doc.positions, decorations, selectedStep],
  );
  const edges = useMemo(() => toFlowEdges(graph, decorations, selectedEdge), [graph, decorations, selectedEdge]);

  const dragKey = useRef("");
  const onNodesChange = useCallback(
    (changes: NodeChange<StepFlowNode>[]) => {
      const moves = changes.filter((c) => c.type === "position" && c.position);
      if (moves.length) {
        commit((d) => {
          const positions = { ...d.positions };
          for (const change of moves) {
            if (change.type === "position" && change.position) {
              positions[change.id] = { x: Math.round(change.position.x), y: Math.round(change.position.y) };
            }
          }
          return { ...d, positions };
        }, dragKey.current || "drag");
      }
      for (const change of changes) {
        if (change.type === "select" && change.selected) setSelection({ kind: "step", id: change.id });
      }
    },
    [commit],
  );
  const onEdgesChange = useCallback((changes: EdgeChange[]) => {
    for (const change of changes) {
      if (change.type === "select" && change.selected) setSelection({ kind: "edge", id: change.id });
    }
  }, []);

  const onConnect = useCallback(
    (connection: Connection) => {
      if (!connection.source || !connection.target) return;
      edit((d) => connect(d, connection.source, connection.target));
    },
    [edit],
  );
  const onReconnect = useCallback(
    (old: Edge, connection: Connection) => {
      if (connection.source !== old.source || !connection.target) return;
      edit((d) => retargetEdge(d, old.id, connection.target));
    },
    [edit],
  );

  const addAt = useCallback(
    (type: StepType, position?: { x: number; y: number }) => {
      let where = position;
      if (!where) {
        const box = canvasRef.current?.getBoundingClientRect();
        const center = box
          ? flow.screenToFlowPosition({ x: box.left + box.width / 2, y: box.top + box.height / 2 })
          : { x: 100, y: 100 };
        const offset = (definition.steps.length % 6) * 24;
        where = { x: center.x + offset, y: center.y + offset };
      }
      const size = nodeSize(type);
      const step = newStep(definition, type);
      const at = { x: Math.round(where.x - size.width / 2), y: Math.round(where.y - size.height / 2) };
      commit((d) => ({
        definition: addStep(d.definition, step),
        positions: { ...d.positions, [step.id]: at },
      }));
      setSelection({ kind: "step", id: step.id });
      setTab("properties");
    },
    [commit, flow, definition],
  );

  const onDrop = useCallback(
    (event: React.DragEvent) => {
      const type = event.dataTransfer.getData(DRAG_TYPE) as StepType;
      if (!type) return;
      event.preventDefault();
      addAt(type, flow.screenToFlowPosition({ x: event.clientX, y: event.clientY }));
    },
    [addAt, flow],
  );

  const deleteSelection = useCallback(() => {
    if (!selection) return;
    if (selection.kind === "step") {
      const id = selection.id;
      commit((d) => {
        const positions = { ...d.positions };
        delete positions[id];
        return { definition: deleteStep(d.definition, id), positions };
      });
    } else {
      const id = selection.id;
      edit((d) => removeEdge(d, id));
    }
    setSelection(null);
  }, [selection, commit, edit]);

  const rename = useCallback(
    (from: string, to: string) => {
      commit((d) => {
        const definition2 = renameStep(d.definition, from, to);
        if (definition2 === d.definition) return d;
        const positions = { ...d.positions, [to]: d.positions[from] };
        delete positions[from];
        return { definition: definition2, positions };
      });
      setSelection({ kind: "step", id: to });
    },
    [commit],
  );

  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (isTyping(event.target)) return;
      const mod = event.ctrlKey || event.metaKey;
      if (mod && event.key.toLowerCase() === "z") {
        event.preventDefault();
        if (event.shiftKey) doRedo();
        else doUndo();
      } else if (mod && event.key.toLowerCase() === "y") {
        event.preventDefault();
        doRedo();
      } else if ((event.key === "Delete" || event.key === "Backspace") && selection) {
        event.preventDefault();
        deleteSelection();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [doUndo, doRedo, deleteSelection, selection]);

  // -- documents: new, import, export, JSON view --------------------------------------------
  const loadDocument = useCallback(
    (next: WorkflowDefinition, message?: string) => {
      commit(layoutDoc(next));
      setJsonError(null);
      setSelection(null);
      setPublished(null);
      if (message) setNotice({ kind: "ok", text: message });
      window.setTimeout(() => {
        if (next.steps.length) void flow.fitView(FIT);
        else void flow.setViewport({ x: 0, y: 0, zoom: 1 });
      }, 50);
    },
    [commit, flow],
  );

  const importFile = useCallback(
    async (file: File) => {
      const parsed = parseJson(await file.text());
      if (!parsed.ok) {
        setNotice({ kind: "error", text: `${file.name}: ${parsed.message}` });
        return;
      }
      loadDocument(parsed.definition, `Imported ${file.name}`);
    },
    [loadDocument],
  );

  const exportFile = useCallback(() => {
    const blob = new Blob([toJson(definition)], { type: "application/json" });
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = fileName(definition);
    document.body.appendChild(link);
    link.click();
    link.remove();
    window.setTimeout(() => URL.revokeObjectURL(url), 1000);
  }, [definition]);

  const copyJson = useCallback(async () => {
    try {
      await navigator.clipboard.writeText(toJson(definition));
      setNotice({ kind: "ok", text: "Definition JSON copied to the clipboard" });
    } catch {
      setTab("json");
      setNotice({ kind: "error", text: "The browser refused the clipboard: select the JSON view's text and copy it" });
    }
  }, [definition]);

  const onJsonChange = useCallback(
    (text: string) => {
      setJsonText(text);
      const parsed = parseJson(text);
      if (!parsed.ok) {
        setJsonError({ message: parsed.message, position: parsed.position });
        return;
      }
      typedInJson.current = true;
      setJsonError(null);
      edit(() => parsed.definition, "json");
    },
    [edit],
  );

  // -- engine --------------------------------------------------------------------------------
  const openFromEngine = useCallback(
    async (id: string, version?: number) => {
      try {
        const found = await api.getDefinition(id, version);
        loadDocument(found, `Opened ${found.id} version ${found.version}`);
        setDialog(null);
      } catch (error) {
        setNotice({ kind: "error", text: error instanceof Error ? error.message : String(error) });
      }
    },
    [loadDocument],
  );

  const openedFromRoute = useRef(false);
  useEffect(() => {
    if (openedFromRoute.current || online !== true || route.segments.length === 0) return;
    openedFromRoute.current = true;
    const version = route.segments[1] ? Number(route.segments[1]) : undefined;
    void openFromEngine(route.segments[0], version);
  }, [online, route, openFromEngine]);

  const publish = useCallback(async () => {
    try {
      const summary = await api.uploadDefinition(toJson(definition));
      setPublished({ id: summary.id, version: summary.version });
      const warnings = summary.warnings?.length ? ` (${summary.warnings.length} warning(s))` : "";
      setNotice({ kind: "ok", text: `Published ${summary.id} version ${summary.version}${warnings}` });
    } catch (error) {
      const text =
        error instanceof ApiError ? `Publishing refused: ${error.message}` : `Publishing failed: ${String(error)}`;
      setNotice({ kind: "error", text });
    }
  }, [definition]);

  // -- render --------------------------------------------------------------------------------
  const selectIssue = useCallback(
    (issue: LocatedIssue) => {
      const stepId = issue.location.stepId;
      if (stepId) {
        setSelection({ kind: "step", id: stepId });
        setTab("properties");
        const position = doc.positions[stepId];
        if (position) {
          const size = nodeSize(String(definition.steps.find((s) => s.id === stepId)?.type));
          flow.setCenter(position.x + size.width / 2, position.y + size.height / 2, { zoom: flow.getZoom(), duration: 200 });
        }
      } else {
        setSelection(null);
        setTab("properties");
      }
    },
    [doc.positions, definition.steps, flow],
  );

  return (
    <div className="modeller">
      <div className="toolbar" role="toolbar">
        <button onClick={() => loadDocument(emptyDefinition(), "New empty definition")} data-testid="new">
          New
        </button>
        <button onClick={() => fileInput.current?.click()} data-testid="import">
          Import…
        </button>
        <input
          ref={fileInput}
          type="file"
          accept=".json,application/json"
          hidden
          data-testid="import-file"
          onChange={(event) => {
            const file = event.target.files?.[0];
            if (file) void importFile(file);
            event.target.value = "";
          }}
        />
        <button onClick={exportFile} data-testid="export">
          Export
        </button>
        <button onClick={() => void copyJson()} data-testid="copy-json">
          Copy JSON
        </button>
        <span className="sep" />
        <button onClick={doUndo} disabled={history.past.length === 0} data-testid="undo" title="Undo (Ctrl+Z)">
          ↶ Undo
        </button>
        <button onClick={doRedo} disabled={history.future.length === 0} data-testid="redo" title="Redo (Ctrl+Shift+Z)">
          ↷ Redo
        </button>
        <span className="sep" />
        <button onClick={() => commit((d) => layoutDoc(d.definition))} data-testid="auto-layout">
          Auto layout
        </button>
        <button onClick={() => void flow.fitView({ ...FIT, duration: 200 })} data-testid="fit">
          Fit
        </button>
        <button onClick={deleteSelection} disabled={!selection} data-testid="delete" title="Delete (Del)">
          Delete
        </button>
        <span className="sep" />
        {online ? (
          <>
            <button onClick={() => setDialog("open")} data-testid="open-engine">
              Open from engine…
            </button>
            <button className="primary" onClick={() => void publish()} disabled={errorCount > 0} data-testid="publish"
              title={errorCount > 0 ? "Fix the errors first" : "Upload as a new version"}>
              Publish
            </button>
            <button onClick={() => setDialog("start")} disabled={!published} data-testid="start-instance"
              title={published ? `Start an instance of ${published.id} v${published.version}` : "Publish first"}>
              Start test instance…
            </button>
          </>
        ) : (
          <span className="offline-note" data-testid="offline-note">
            Offline: import/export files; publishing needs an engine
          </span>
        )}
        <span className="grow" />
        <span
          className={`validation-state ${errorCount ? "bad" : "good"}`}
          data-testid="validation-state"
          title={validationError}
        >
          {validation === "failed"
            ? "validator unreachable"
            : validation === "checking"
              ? "validating…"
              : errorCount
                ? `${errorCount} error(s), ${warningCount} warning(s)`
                : warningCount
                  ? `valid, ${warningCount} warning(s)`
                  : "valid"}
        </span>
      </div>
      {notice ? (
        <div className={`notice notice-${notice.kind}`} data-testid="notice" onClick={() => setNotice(null)}>
          {notice.text}
        </div>
      ) : null}
      <div className="workspace">
        <Palette onAdd={(type) => addAt(type)} />
        <div className="canvas-column">
          <div
            className="canvas"
            ref={canvasRef}
            data-testid="canvas"
            onDragOver={(event) => {
              if (event.dataTransfer.types.includes(DRAG_TYPE)) {
                event.preventDefault();
                event.dataTransfer.dropEffect = "copy";
              }
            }}
            onDrop={onDrop}
          >
            <ReactFlow
              nodes={nodes}
              edges={edges}
              nodeTypes={nodeTypes}
              onNodesChange={onNodesChange}
              onEdgesChange={onEdgesChange}
              onConnect={onConnect}
              onReconnect={onReconnect}
              onNodeDragStart={(_, node) => (dragKey.current = `drag:${node.id}:${Date.now()}`)}
              onPaneClick={() => setSelection(null)}
              deleteKeyCode={null}
              connectionRadius={40}
              multiSelectionKeyCode={null}
              minZoom={0.2}
              maxZoom={2.5}
              fitView
              fitViewOptions={FIT}
              proOptions={{ hideAttribution: true }}
            >
              <Background gap={20} />
              <Controls />
              <MiniMap pannable zoomable nodeStrokeWidth={3} nodeColor={minimapColor} />
            </ReactFlow>
            {definition.steps.length === 0 ? (
              <div className="canvas-hint">Drag steps from the palette, or import a definition. The first step you add is the entry step.</div>
            ) : null}
          </div>
          <IssueList issues={issues} definition={definition} onSelect={selectIssue} />
        </div>
        <aside className="side">
          <div className="tabs">
            <button className={tab === "properties" ? "active" : ""} onClick={() => setTab("properties")} data-testid="tab-properties">
              Properties
            </button>
            <button className={tab === "json" ? "active" : ""} onClick={() => setTab("json")} data-testid="tab-json">
              JSON
            </button>
          </div>
          {tab === "properties" ? (
            <PropertyPanel
              definition={definition}
              selection={selection}
              issues={issues}
              edit={edit}
              rename={rename}
              onSelect={setSelection}
              onDelete={deleteSelection}
            />
          ) : (
            <JsonView text={jsonText} error={jsonError} onChange={onJsonChange} />
          )}
        </aside>
      </div>
      {dialog === "open" ? <EngineDialog onOpen={openFromEngine} onClose={() => setDialog(null)} /> : null}
      {dialog === "start" && published ? (
        <StartDialog definitionId={published.id} version={published.version} onClose={() => setDialog(null)} />
      ) : null}
    </div>
  );
}
