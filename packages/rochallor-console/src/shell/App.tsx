import { useEffect, useState } from "react";
import { apiKey, engineAvailable, setApiKey } from "../shared/api";
import { EngineContext } from "../shared/engine";
import { useRoute } from "./router";
import { sections } from "./sections";

export function App() {
  const route = useRoute();
  const [online, setOnline] = useState<boolean | null>(null);
  useEffect(() => {
    engineAvailable().then(setOnline);
  }, []);
  const visible = sections.filter((s) => !s.needsEngine || online !== false);
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
          {online ? (
            <button
              className="key-button"
              data-testid="api-key"
              title="The API key or token sent to the engine (kept in this browser)"
              onClick={() => {
                const entered = window.prompt("API key or bearer token (empty to clear)", apiKey() ?? "");
                if (entered === null) return;
                setApiKey(entered.trim() || null);
                window.location.reload();
              }}
            >
              {apiKey() ? "key set" : "API key"}
            </button>
          ) : null}
          <span className={`engine-state ${online ? "online" : "offline"}`} data-testid="engine-state">
            {online === null ? "…" : online ? "engine connected" : "offline (validator only)"}
          </span>
        </header>
        <main className="content">{current ? current.render(route) : <p>No sections.</p>}</main>
      </div>
    </EngineContext.Provider>
  );
}
