import { describe, expect, it } from "vitest";
import type { WorkflowDefinition } from "../shared/definition";
import {
  addStep,
  connect,
  deleteStep,
  emptyDefinition,
  makeEntry,
  moveCondition,
  newStep,
  parseEdgeId,
  parseJson,
  removeCondition,
  removeEdge,
  renameStep,
  retargetEdge,
  setCondition,
  toJson,
} from "./model";

function loan(): WorkflowDefinition {
  return {
    id: "LOS::loan",
    name: "Loan",
    steps: [
      { id: "start", name: "Start", type: "SERVICE_TASK", jobType: "a", nextStep: "checks" },
      { id: "checks", name: "Checks", type: "PARALLEL_GATEWAY", parallelNextSteps: ["x", "y"], joinStep: "join" },
      { id: "x", name: "X", type: "SERVICE_TASK", jobType: "x", nextStep: "join" },
      {
        id: "y",
        name: "Y",
        type: "USER_TASK",
        nextStep: "join",
        boundaryEvents: [{ type: "TIMER", duration: "PT1H", interrupting: true, targetStepId: "end" }],
      },
      { id: "join", name: "Join", type: "JOIN_GATEWAY", nextStep: "route" },
      { id: "route", name: "Route", type: "DECISION", conditionalNextSteps: { "a > 1": "end", "a <= 1": "x" } },
      { id: "end", name: "End", type: "END" },
    ],
  };
}

describe("new steps", () => {
  it("get unique ids and the required fields of their type", () => {
    let d = emptyDefinition();
    const a = newStep(d, "SERVICE_TASK");
    d = addStep(d, a);
    const b = newStep(d, "SERVICE_TASK");
    expect(a.id).toBe("service-task-1");
    expect(b.id).toBe("service-task-2");
    expect(a).toMatchObject({ type: "SERVICE_TASK", jobType: "" });
    expect(newStep(d, "PARALLEL_GATEWAY")).toMatchObject({ parallelNextSteps: [], joinStep: "" });
    expect(newStep(d, "DECISION_TABLE")).toMatchObject({ hitPolicy: "U", rules: [{ inputEntries: ["-"], outputEntries: [null] }] });
    expect(Object.keys(newStep(d, "END"))).toEqual(["id", "name", "type"]);
  });
});

describe("connect", () => {
  it("sets nextStep on tasks, replacing the previous one", () => {
    const d = connect(loan(), "x", "end");
    expect(d.steps[2].nextStep).toBe("end");
  });

  it("appends a condition on a decision, keeping the written order", () => {
    const d = connect(loan(), "route", "start");
    expect(Object.entries(d.steps[5].conditionalNextSteps!)).toEqual([
      ["a > 1", "end"],
      ["a <= 1", "x"],
      ["true", "start"],
    ]);
  });

  it("adds a branch on a parallel gateway, or its join when none is set", () => {
    const d = connect(loan(), "checks", "end");
    expect(d.steps[1].parallelNextSteps).toEqual(["x", "y", "end"]);
    const noJoin = { ...loan(), steps: loan().steps.map((s) => (s.id === "checks" ? { ...s, joinStep: "" } : s)) };
    expect(connect(noJoin, "checks", "join").steps[1]).toMatchObject({ joinStep: "join", parallelNextSteps: ["x", "y"] });
  });

  it("never connects from an END or to an unknown step", () => {
    const d = loan();
    expect(connect(d, "end", "start")).toBe(d);
    expect(connect(d, "start", "nope")).toBe(d);
  });
});

describe("edges", () => {
  it("parse back to their source field", () => {
    expect(parseEdgeId("a:b:cond:2")).toEqual({ source: "a:b", kind: "condition", index: 2 });
    expect(parseEdgeId("s:next")).toEqual({ source: "s", kind: "next", index: 0 });
    expect(parseEdgeId("junk")).toBeNull();
  });

  it("are removed from the field they stand for", () => {
    let d = removeEdge(loan(), "route:cond:0");
    expect(d.steps[5].conditionalNextSteps).toEqual({ "a <= 1": "x" });
    d = removeEdge(d, "checks:par:1");
    expect(d.steps[1].parallelNextSteps).toEqual(["x"]);
    d = removeEdge(d, "y:timer:0");
    expect(d.steps[3].boundaryEvents).toEqual([]);
    d = removeEdge(d, "start:next");
    expect("nextStep" in d.steps[0]).toBe(false);
    d = removeEdge(d, "join:next");
    expect(d.steps[4].nextStep).toBe("");
  });

  it("are retargeted in place", () => {
    const d = retargetEdge(loan(), "route:cond:0", "y");
    expect(Object.entries(d.steps[5].conditionalNextSteps!)).toEqual([
      ["a > 1", "y"],
      ["a <= 1", "x"],
    ]);
    expect(retargetEdge(loan(), "y:timer:0", "x").steps[3].boundaryEvents![0].targetStepId).toBe("x");
  });
});

describe("rename and delete", () => {
  it("rename updates every reference", () => {
    const d = renameStep(loan(), "x", "x2");
    expect(d.steps.map((s) => s.id)).toContain("x2");
    expect(d.steps[1].parallelNextSteps).toEqual(["x2", "y"]);
    expect(d.steps[5].conditionalNextSteps).toEqual({ "a > 1": "end", "a <= 1": "x2" });
    const j = renameStep(loan(), "join", "meet");
    expect(j.steps[1].joinStep).toBe("meet");
    expect(j.steps[2].nextStep).toBe("meet");
    expect(renameStep(loan(), "end", "x2").steps[3].boundaryEvents![0].targetStepId).toBe("x2");
  });

  it("rename refuses a blank or taken id", () => {
    const d = loan();
    expect(renameStep(d, "x", "y")).toBe(d);
    expect(renameStep(d, "x", "  ")).toBe(d);
  });

  it("delete removes the step and every reference to it", () => {
    const d = deleteStep(loan(), "end");
    expect(d.steps.find((s) => s.id === "end")).toBeUndefined();
    expect(d.steps[5].conditionalNextSteps).toEqual({ "a <= 1": "x" });
    expect(d.steps[3].boundaryEvents).toEqual([]);
    const j = deleteStep(loan(), "join");
    expect(j.steps[0].joinStep).toBeUndefined();
    expect(j.steps.find((s) => s.id === "checks")!.joinStep).toBe("");
    expect("nextStep" in j.steps.find((s) => s.id === "x")!).toBe(false);
  });

  it("leaves the input document untouched", () => {
    const d = loan();
    const before = JSON.stringify(d);
    deleteStep(d, "end");
    renameStep(d, "x", "z");
    connect(d, "route", "start");
    expect(JSON.stringify(d)).toBe(before);
  });
});

describe("conditions", () => {
  it("move up and down, bounded", () => {
    const d = moveCondition(loan(), "route", 1, -1);
    expect(Object.keys(d.steps[5].conditionalNextSteps!)).toEqual(["a <= 1", "a > 1"]);
    const same = loan();
    expect(moveCondition(same, "route", 0, -1)).toBe(same);
  });

  it("edit text and target in place; a duplicate text is refused", () => {
    const d = setCondition(loan(), "route", 0, "a > 2", "y");
    expect(Object.entries(d.steps[5].conditionalNextSteps!)).toEqual([
      ["a > 2", "y"],
      ["a <= 1", "x"],
    ]);
    const same = loan();
    expect(setCondition(same, "route", 0, "a <= 1", "y")).toBe(same);
  });

  it("an inline routing map emptied is removed; a decision keeps an empty one", () => {
    const inline: WorkflowDefinition = {
      id: "a",
      name: "a",
      steps: [{ id: "t", name: "t", type: "USER_TASK", conditionalNextSteps: { ok: "e" } }, { id: "e", name: "e", type: "END" }],
    };
    expect("conditionalNextSteps" in removeCondition(inline, "t", 0).steps[0]).toBe(false);
    const d = removeCondition(removeCondition(loan(), "route", 0), "route", 0);
    expect(d.steps[5].conditionalNextSteps).toEqual({});
  });
});

describe("documents", () => {
  it("makeEntry moves a step first", () => {
    expect(makeEntry(loan(), "route").steps.map((s) => s.id).slice(0, 2)).toEqual(["route", "start"]);
  });

  it("round-trips JSON with key order kept", () => {
    const text = '{"name":"N","id":"I","steps":[{"type":"END","name":"e","id":"e"}],"metadata":{"z":1,"a":2}}';
    const parsed = parseJson(text);
    expect(parsed.ok).toBe(true);
    if (parsed.ok) expect(JSON.stringify(JSON.parse(toJson(parsed.definition)))).toBe(text);
  });

  it("reports JSON that cannot be drawn", () => {
    expect(parseJson("{").ok).toBe(false);
    expect(parseJson("[]")).toMatchObject({ ok: false, message: "a definition is a JSON object" });
    expect(parseJson('{"id":"a"}')).toMatchObject({ ok: false });
    expect(parseJson('{"steps":[{"name":"x"}]}')).toMatchObject({ ok: false });
  });
});
