// Text <-> JSON value for the cells of transformations and decision-table outputs: what the
// user types is JSON when it parses as JSON, otherwise a string (so `${a + 1}` and `GOLD` are
// strings, `42` a number, `"42"` the string 42).

export function literalToText(value: unknown): string {
  if (typeof value === "string") {
    if (value.startsWith("${")) return value;
    try {
      JSON.parse(value);
    } catch {
      return value;
    }
    return JSON.stringify(value);
  }
  if (value === undefined) return "";
  return JSON.stringify(value);
}

export function textToLiteral(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
