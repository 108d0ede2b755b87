import { describe, expect, it } from "vitest";
import { buildHash, parseHash } from "./router";

describe("hash router", () => {
  it("parses section, segments and query", () => {
    const route = parseHash("#/modeller/LOS%3A%3Aloan/3?mode=json");
    expect(route.section).toBe("modeller");
    expect(route.segments).toEqual(["LOS::loan", "3"]);
    expect(route.query.get("mode")).toBe("json");
  });

  it("round-trips what it builds", () => {
    const hash = buildHash("instances", ["a/b c"], { status: "ACTIVE" });
    const route = parseHash(hash);
    expect(route.section).toBe("instances");
    expect(route.segments).toEqual(["a/b c"]);
    expect(route.query.get("status")).toBe("ACTIVE");
  });

  it("treats an empty hash as no section", () => {
    expect(parseHash("").section).toBe("");
  });
});
