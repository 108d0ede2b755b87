// Re-run a loader every `intervalMs` while `live` (and once whenever its inputs change).
import { useCallback, useEffect, useRef, useState } from "react";
import { ApiError } from "../shared/api";

export interface Polled<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
  reload: () => void;
  /** When the data was last read. */
  at: Date | null;
}

export function usePolling<T>(load: () => Promise<T>, deps: unknown[], live = true, intervalMs = 2000): Polled<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [at, setAt] = useState<Date | null>(null);
  const generation = useRef(0);
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const run = useCallback(load, deps);
  const reload = useCallback(() => {
    const mine = ++generation.current;
    run().then(
      (value) => {
        if (mine !== generation.current) return;
        setData(value);
        setError(null);
        setLoading(false);
        setAt(new Date());
      },
      (exc: unknown) => {
        if (mine !== generation.current) return;
        setError(exc instanceof ApiError || exc instanceof Error ? exc.message : String(exc));
        setLoading(false);
      },
    );
  }, [run]);
  useEffect(() => {
    setLoading(true);
    reload();
    if (!live) return;
    const timer = window.setInterval(reload, intervalMs);
    return () => window.clearInterval(timer);
  }, [reload, live, intervalMs]);
  return { data, error, loading, reload, at };
}

export function errorText(exc: unknown): string {
  return exc instanceof Error ? exc.message : String(exc);
}
