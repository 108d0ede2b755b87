import { useCallback, useEffect, useState } from "react";
import { credential, probeEngine, signIn, signOut, UNAUTHORIZED_EVENT, type EngineState } from "../shared/api";
import { EngineContext } from "../shared/engine";
import { useRoute } from "./router";
import { sections } from "./sections";
import { SignIn } from "./SignIn";

export function App() {
  const route = useRoute();
  const [state, setState] = useState<EngineState | null>(null);
  const [signedIn, setSignedIn] = useState(() => credential() !== null);
  const [refused, setRefused] = useState<string | null>(null);
  useEffect(() => {
    probeEngine().then(setState);
    // Any later 401 (a revoked key, an expired token) brings the sign-in form back.
    const unauthorized = () => setState("signin");
    window.addEventListener(UNAUTHORIZED_EVENT, unauthorized);
    return () => window.removeEventListener(UNAUTHORIZED_EVENT, unauthorized);
  }, []);
  const submit = useCallback(async (token: string) => {
    signIn(token);
    const found = await probeEngine();
    if (found === "signin") {
      signOut();
      setRefused("The engine refused this credential.");
    } else {
      setRefused(null);
    }
    setSignedIn(credential() !== null);
    setState(found);
  }, []);
  const leave = useCallback(() => {
    signOut();
    setSignedIn(false);
    setRefused(null);
    probeEngine().then(setState);
  }, []);
  const online = state === null ? null : state === "online";
  const visible = sections.filter((s) => !s.needsEngine || state !== "offline");
  const current = visible.find((s) => s.id === route.section) ?? visible[0];
  return (
    <EngineContext.Provider value={{ online }}>
      <div className="shell">
        <header className="topbar">
          <a className="brand" href="#/">
            Rochallor
          </a>
          <nav className="topnav">
            {visible.map((s) => (
              <a
                key={s.id}
                href={`#/${s.id}`}
                className={current?.id === s.id ? "active" : ""}
                data-testid={`nav-${s.id}`}
              >
                {s.label}
              </a>
            ))}
          </nav>
          {signedIn ? (
            <button className="key-button" data-testid="sign-out" title="Forget the credential in this tab" onClick={leave}>
              Sign out
            </button>
          ) : null}
          <span className={`engine-state ${online ? "online" : "offline"}`} data-testid="engine-state">
            {state === null
              ? "…"
              : state === "online"
                ? "engine connected"
                : state === "signin"
                  ? "sign-in required"
                  : "offline (validator only)"}
          </span>
        </header>
        <main className="content">
          {state === "signin" ? (
            <SignIn onSubmit={submit} refused={refused} />
          ) : current ? (
            current.render(route)
          ) : (
            <p>No sections.</p>
          )}
        </main>
      </div>
    </EngineContext.Provider>
  );
}
