import { describe, expect, it } from "vitest";
import { diffLines } from "./diff";

describe("diffLines", () => {
  it("keeps equal texts as same rows", () => {
    expect(diffLines("a\nb", "a\nb").map((r) => r.kind)).toEqual(["same", "same"]);
  });

  it("pairs a changed line and keeps the rest aligned", () => {
    const rows = diffLines("a\nb\nc", "a\nB\nc\nd");
    expect(rows.map((r) => r.kind)).toEqual(["same", "changed", "same", "added"]);
    expect(rows[1]).toMatchObject({ left: "b", right: "B", leftNo: 2, rightNo: 2 });
    expect(rows[3]).toMatchObject({ left: null, right: "d", rightNo: 4 });
  });

  it("reports removed lines", () => {
    const rows = diffLines("a\nx\ny\nb", "a\nb");
    expect(rows.map((r) => r.kind)).toEqual(["same", "removed", "removed", "same"]);
  });
});
