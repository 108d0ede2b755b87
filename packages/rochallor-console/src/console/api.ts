// The operations endpoints the console uses (all documented in the engine's OpenAPI document).
import { type Instance, type Page, request } from "../shared/api";

export const STATUSES = ["ACTIVE", "WAITING", "COMPLETED", "FAILED", "CANCELLED"] as const;
export type Status = (typeof STATUSES)[number];
export type Counts = Record<Status, number>;

export interface StepExecution {
  id: string;
  instanceId: string;
  stepId: string;
  stepType: string;
  attemptNumber: number;
  status: "RUNNING" | "COMPLETED" | "FAILED" | "SKIPPED" | string;
  startedAt: string;
  endedAt: string | null;
  failureReason: string | null;
}

export interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  kind: string;
  detail: Record<string, unknown>;
}

export interface Links {
  parent: string | null;
  children: string[];
}

export interface VersionStats {
  id: string;
  version: number;
  name: string;
  uploadedAt: string;
  instances: Counts;
}

export interface JobQueue {
  jobType: string;
  unlocked: number;
  locked: number;
  oldestUnlockedAt: string | null;
  oldestUnlockedAgeSeconds: number | null;
  exhausted: number;
  workers: { workerId: string; lastSeenAt: string }[];
}

export interface ExhaustedJob {
  jobId: string;
  jobType: string;
  instanceId: string;
  stepId: string;
  workerId: string | null;
  failedAt: string;
  errorMessage: string | null;
  definitionId: string;
  definitionVersion: number;
}

export interface BulkRetryResult {
  instanceId: string;
  status: number;
  instance?: Instance;
  error?: string;
  reason?: string;
}

export interface InstanceQuery {
  status?: string;
  definitionId?: string;
  definitionVersion?: string;
  businessKey?: string;
  startedAfter?: string;
  startedBefore?: string;
}

const enc = encodeURIComponent;

/** The query string of a filter: empty values are left out. */
export function filterQuery(filter: InstanceQuery, extra: Record<string, string | number> = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries({ ...filter, ...extra })) {
    if (value !== undefined && value !== "") params.set(key, String(value));
  }
  return params.toString();
}

export const consoleApi = {
  instances: (filter: InstanceQuery, page: number, pageSize: number) =>
    request<Page<Instance>>("GET", `/v1/instances?${filterQuery(filter, { page, pageSize })}`),
  counts: (filter: InstanceQuery) => {
    const { status: _status, ...rest } = filter;
    return request<{ counts: Counts; total: number }>("GET", `/v1/instances/counts?${filterQuery(rest)}`);
  },
  instance: (id: string) => request<Instance>("GET", `/v1/instances/${enc(id)}`),
  history: (id: string) => request<{ items: StepExecution[] }>("GET", `/v1/instances/${enc(id)}/history`),
  audit: (id: string) => request<{ items: AuditEntry[] }>("GET", `/v1/instances/${enc(id)}/audit?limit=1000`),
  links: (id: string) => request<Links>("GET", `/v1/instances/${enc(id)}/links`),
  cancel: (id: string, reason: string) => request<Instance>("POST", `/v1/instances/${enc(id)}/cancel`, { reason }),
  retry: (id: string, variables?: Record<string, unknown>) =>
    request<Instance>("POST", `/v1/instances/${enc(id)}/retry`, variables ? { variables } : {}),
  retryMatching: (filter: InstanceQuery, variables?: Record<string, unknown>, limit = 100) => {
    const { status: _status, ...rest } = filter;
    const cleaned = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined && v !== ""));
    if (cleaned.definitionVersion) cleaned.definitionVersion = Number(cleaned.definitionVersion) as never;
    return request<{ results: BulkRetryResult[]; matched: number }>("POST", "/v1/instances/retry", {
      filter: cleaned,
      variables,
      limit,
    });
  },
  completeUserTask: (id: string, stepId: string, variables: Record<string, unknown>) =>
    request<void>("POST", `/v1/instances/${enc(id)}/user-tasks/${enc(stepId)}/complete`, {
      variables,
      completedBy: "console",
    }),
  signal: (id: string, stepId: string, body: Record<string, unknown>) =>
    request<void>("POST", `/v1/instances/${enc(id)}/signals/${enc(stepId)}`, body),
  versions: (definitionId: string) =>
    request<{ items: VersionStats[] }>("GET", `/v1/definitions/${enc(definitionId)}/versions`),
  queues: () => request<{ items: JobQueue[]; workerWindowSeconds: number }>("GET", "/v1/jobs/queues"),
  exhausted: (page = 0, pageSize = 50) =>
    request<Page<ExhaustedJob>>("GET", `/v1/jobs/exhausted?page=${page}&pageSize=${pageSize}`),
};
