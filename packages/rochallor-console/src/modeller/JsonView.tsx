// The definition as JSON, editable: a text that parses replaces the document at once; one that
// does not is kept (and shown with the parse error) until it does.

function lineAndColumn(text: string, position: number): string {
  const before = text.slice(0, position);
  const line = before.split("\n").length;
  const column = position - before.lastIndexOf("\n");
  return `line ${line}, column ${column}`;
}

export function JsonView({
  text,
  error,
  onChange,
}: {
  text: string;
  error: { message: string; position?: number } | null;
  onChange: (text: string) => void;
}) {
  return (
    <div className="json-view">
      <div className="help">
        The document the engine reads. Edit here or on the canvas; both follow each other.
      </div>
      <textarea
        data-testid="json-text"
        spellCheck={false}
        value={text}
        onChange={(event) => onChange(event.target.value)}
        className={error ? "invalid" : ""}
      />
      {error ? (
        <div className="field-error" data-testid="json-error">
          Not applied: {error.message}
          {error.position !== undefined ? ` (${lineAndColumn(text, error.position)})` : ""}
        </div>
      ) : null}
    </div>
  );
}
