import { createContext, useContext } from "react";

export interface EngineState {
  /** null while unknown; false when no engine answers (offline modeller). */
  online: boolean | null;
}

export const EngineContext = createContext<EngineState>({ online: null });

export function useEngine(): EngineState {
  return useContext(EngineContext);
}
