import { useState, type FormEvent } from "react";

/** The sign-in form shown when the engine answers 401. The credential goes to sessionStorage
 * through `onSubmit`; the form is never submitted by the browser, so it never reaches a URL. */
export function SignIn({ onSubmit, refused }: { onSubmit: (token: string) => Promise<void>; refused: string | null }) {
  const [token, setToken] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const entered = token.trim();
    if (!entered) return;
    setBusy(true);
    try {
      await onSubmit(entered);
    } finally {
      setBusy(false);
      setToken("");
    }
  };
  return (
    <form className="signin" data-testid="signin" method="post" onSubmit={submit} autoComplete="off">
      <h2>Sign in</h2>
      <p>This engine requires a credential: an API key (<code>rk_…</code>) or a bearer token.</p>
      <label>
        API key or token
        <input
          type="password"
          name="credential"
          data-testid="signin-token"
          value={token}
          onChange={(e) => setToken(e.target.value)}
          autoFocus
        />
      </label>
      <button type="submit" className="primary" data-testid="signin-submit" disabled={busy || !token.trim()}>
        Sign in
      </button>
      {refused ? (
        <p className="signin-error" role="alert" data-testid="signin-error">
          {refused}
        </p>
      ) : null}
      <p className="signin-note">Kept in this tab only (sessionStorage) until you sign out or close it.</p>
    </form>
  );
}
