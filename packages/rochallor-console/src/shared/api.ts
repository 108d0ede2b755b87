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

const API_KEY = "rochallor.apiKey";

/** The credential the UI sends (an API key or a JWT), kept in this browser only. */
export function apiKey(): string | null {
  try {
    return window.localStorage.getItem(API_KEY);
  } catch {
    return null;
  }
}

export function setApiKey(key: string | null): void {
  if (key) window.localStorage.setItem(API_KEY, key);
  else window.localStorage.removeItem(API_KEY);
}

export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
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

/** Whether an engine answers (the offline modeller has no definition store). An engine that
 * wants a credential (401/403) is there: the shell offers to set the key. */
export async function engineAvailable(): Promise<boolean> {
  try {
    await api.listDefinitions("", 0, 1);
    return true;
  } catch (error) {
    return error instanceof ApiError && (error.status === 401 || error.status === 403);
  }
}
