import { describe, expect, it } from "vitest";
import type { WorkflowDefinition } from "../shared/definition";
import { initHistory, push, redo, undo } from "./history";
import { edgesWithIssues, fieldIssues, issuesByStep, locateAll, locateIssue } from "./issues";
import { literalToText, textToLiteral } from "./literal";

const definition: WorkflowDefinition = {
  id: "a",
  name: "a",
  steps: [
    { id: "d", name: "D", type: "DECISION", conditionalNextSteps: { "x >": "e" } },
    { id: "w", name: "W", type: "WAIT", nextStep: "e", boundaryEvents: [{ type: "TIMER", duration: "5m", targetStepId: "e" }] },
    { id: "e", name: "E", type: "END" },
  ],
};

describe("locating validator issues", () => {
  it("maps step paths to the step, its field and the edge", () => {
    expect(locateIssue(definition, { code: "DECISION_EXPR_SYNTAX", path: "$.steps[0].conditionalNextSteps[0].condition", message: "", stepId: "d" })).toEqual({
      stepId: "d",
      field: "conditionalNextSteps",
      index: 0,
      rest: "condition",
      edgeId: "d:cond:0",
    });
    expect(locateIssue(definition, { code: "BOUNDARY_DURATION", path: "$.steps[1].boundaryEvents[0].duration", message: "" })).toMatchObject({
      stepId: "w",
      edgeId: "w:timer:0",
    });
    expect(locateIssue(definition, { code: "REF_RESOLVES", path: "$.steps[1].nextStep", message: "" })).toMatchObject({ edgeId: "w:next" });
    expect(locateIssue(definition, { code: "TRANSFORMATION_EXPR_SYNTAX", path: "$.steps[1].transformations.total", message: "" })).toMatchObject({
      field: "transformations",
      rest: "total",
    });
    expect(locateIssue(definition, { code: "ALL_REACHABLE", path: "$.steps[2]", message: "" })).toEqual({
      stepId: "e",
      field: undefined,
      index: undefined,
      rest: undefined,
    });
  });

  it("maps top-level paths to the definition", () => {
    expect(locateIssue(definition, { code: "ID_FORMAT", path: "$.id", message: "" })).toEqual({ field: "id", stepId: undefined });
    expect(locateIssue(definition, { code: "END_REACHABLE", path: "$.steps", message: "" })).toMatchObject({ field: "steps" });
  });

  it("summarises per step (errors win over warnings) and per edge", () => {
    const issues = locateAll(definition, [
      { code: "A", path: "$.steps[0].conditionalNextSteps[0].condition", message: "", severity: "error" },
      { code: "B", path: "$.steps[0].name", message: "", severity: "warning" },
      { code: "C", path: "$.steps[1].description", message: "", severity: "warning" },
    ]);
    expect(issuesByStep(issues)).toEqual({ d: { severity: "error", count: 2 }, w: { severity: "warning", count: 1 } });
    expect([...edgesWithIssues(issues)]).toEqual(["d:cond:0"]);
    expect(fieldIssues(issues, "d", "conditionalNextSteps", 0).map((i) => i.code)).toEqual(["A"]);
  });
});

describe("literal cells", () => {
  it.each([
    ["abc", "abc"],
    ["42", '"42"'],
    [42, "42"],
    [true, "true"],
    [null, "null"],
    ["${a + 1}", "${a + 1}"],
    [[1, 2], "[1,2]"],
    [{ k: "v" }, '{"k":"v"}'],
    ["", ""],
  ])("%j shows as %s and reads back", (value, text) => {
    expect(literalToText(value)).toBe(text);
    expect(textToLiteral(text)).toEqual(value);
  });
});

describe("history", () => {
  it("undoes and redoes; a new edit drops the redo branch", () => {
    let h = initHistory(1);
    h = push(h, 2);
    h = push(h, 3);
    h = undo(h);
    expect(h.present).toBe(2);
    h = redo(h);
    expect(h.present).toBe(3);
    h = undo(undo(h));
    expect(h.present).toBe(1);
    expect(undo(h)).toBe(h);
    h = push(h, 9);
    expect(h.future).toEqual([]);
    expect(redo(h)).toBe(h);
  });

  it("coalesces typing into one undo step", () => {
    let h = initHistory("");
    h = push(h, "a");
    h = push(h, "ab", true);
    h = push(h, "abc", true);
    expect(undo(h).present).toBe("");
  });
});
