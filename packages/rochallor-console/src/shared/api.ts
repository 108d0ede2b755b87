// The engine's REST API as the UI uses it. Same origin: the UI is served by the engine (or by
// the offline `rochallor-modeller`, which answers only the validation endpoint).
import type { WorkflowDefinition } from "./definition";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(ApiError.describe(status, body));
  }

  static describe(status: number, body: unknown): string {
    if (body && typeof body === "object" && "reason" in body) {
      return `${status}: ${String((body as { reason: unknown }).reason)}`;
    }
    return `HTTP ${status}`;
  }
}

const CREDENTIAL = "rochallor.credential";
/** Where earlier versions kept the key (localStorage); removed on first use. */
const LEGACY_KEY = "rochallor.apiKey";

/** Raised (as a window event) when the engine answers 401: the shell shows the sign-in form. */
export const UNAUTHORIZED_EVENT = "rochallor:unauthorized";

/** The credential the UI sends (an API key or a JWT). Kept in sessionStorage: it lives as long
 * as this tab, is never written to localStorage and never put in a URL. */
export function credential(): string | null {
  try {
    window.localStorage.removeItem(LEGACY_KEY);
    return window.sessionStorage.getItem(CREDENTIAL);
  } catch {
    return null;
  }
}

export function signIn(token: string): void {
  window.sessionStorage.setItem(CREDENTIAL, token);
}

export function signOut(): void {
  window.sessionStorage.removeItem(CREDENTIAL);
}

export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const token = credential();
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: unknown = undefined;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  if (response.status === 401) window.dispatchEvent(new Event(UNAUTHORIZED_EVENT));
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed as T;
}

export interface Page<T> {
  items: T[];
  total: number;
  page: number;
  pageSize: number;
}

export interface DefinitionSummary {
  id: string;
  version: number;
  name: string;
  uploadedAt?: string;
  warnings?: Issue[];
}

export interface Issue {
  code: string;
  path: string;
  message: string;
  severity?: "error" | "warning" | string;
  stepId?: string | null;
  /** Expression syntax errors: offset of the error in the expression text as written. */
  position?: number;
}

export interface ValidationResult {
  accepted: boolean;
  errors: Issue[];
  warnings: Issue[];
}

export interface Instance {
  id: string;
  definitionId: string;
  definitionVersion: number;
  status: string;
  currentStepIds: string[];
  variables: Record<string, unknown>;
  startedAt: string;
  completedAt?: string;
  failureReason?: string;
  businessKey?: string;
}

const enc = encodeURIComponent;

export const api = {
  listDefinitions: (keyword = "", page = 0, pageSize = 50) =>
    request<Page<DefinitionSummary>>(
      "GET",
      `/v1/definitions?page=${page}&pageSize=${pageSize}${keyword ? `&keyword=${enc(keyword)}` : ""}`,
    ),
  getDefinition: (id: string, version?: number) =>
    request<WorkflowDefinition>(
      "GET",
      version ? `/v1/definitions/${enc(id)}/versions/${version}` : `/v1/definitions/${enc(id)}`,
    ),
  uploadDefinition: (definition: WorkflowDefinition | string) =>
    request<DefinitionSummary>("POST", "/v1/definitions", definition),
  validateDefinition: (definition: unknown) =>
    request<ValidationResult>("POST", "/v1/definitions/validate", typeof definition === "string" ? definition : JSON.stringify(definition)),
  startInstance: (definitionId: string, variables: Record<string, unknown>, definitionVersion?: number, businessKey?: string) =>
    request<Instance>("POST", "/v1/instances", { definitionId, variables, definitionVersion, businessKey }),
  getInstance: (id: string) => request<Instance>("GET", `/v1/instances/${enc(id)}`),
  listInstances: (query = "") => request<Page<Instance>>("GET", `/v1/instances${query ? `?${query}` : ""}`),
};

/** What the UI finds behind its origin: an engine it may use, an engine that wants a
 * credential (401: the sign-in form), or no engine (the offline modeller). A 403 means the
 * engine is there and the credential is valid, only its role does not allow the probe. */
export type EngineState = "online" | "signin" | "offline";

export async function probeEngine(): Promise<EngineState> {
  try {
    await api.listDefinitions("", 0, 1);
    return "online";
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return "signin";
    if (error instanceof ApiError && error.status === 403) return "online";
    return "offline";
  }
}
