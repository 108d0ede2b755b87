// A tiny hash router: `#/<section>/<rest...>?query`.
import { useEffect, useState } from "react";

export interface Route {
  /** First path segment, e.g. "modeller". */
  section: string;
  /** The remaining segments, decoded. */
  segments: string[];
  query: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#/, "");
  const [path, queryText = ""] = raw.split("?", 2);
  const parts = path.split("/").filter(Boolean).map((p) => decodeURIComponent(p));
  return { section: parts[0] ?? "", segments: parts.slice(1), query: new URLSearchParams(queryText) };
}

export function buildHash(section: string, segments: string[] = [], query?: Record<string, string>): string {
  const path = [section, ...segments].map((p) => encodeURIComponent(p)).join("/");
  const q = query ? new URLSearchParams(query).toString() : "";
  return `#/${path}${q ? `?${q}` : ""}`;
}

export function navigate(section: string, segments: string[] = [], query?: Record<string, string>): void {
  window.location.hash = buildHash(section, segments, query);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(window.location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseHash(window.location.hash));
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return route;
}
