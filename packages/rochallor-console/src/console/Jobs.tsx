// Job queues per job type, and the jobs whose retries ran out (incidents) with a retry action.
import { useState } from "react";
import { buildHash } from "../shell/router";
import { consoleApi, type ExhaustedJob } from "./api";
import { ConfirmDialog } from "./ConfirmDialog";
import { formatDuration } from "./path";
import { shortId, when } from "./format";
import { usePolling } from "./usePolling";

export function Jobs() {
  const [live, setLive] = useState(true);
  const queues = usePolling(() => consoleApi.queues(), [], live);
  const exhausted = usePolling(() => consoleApi.exhausted(), [], live);
  const [retrying, setRetrying] = useState<ExhaustedJob | null>(null);
  return (
    <div className="page console" data-testid="jobs-page">
      <div className="page-head">
        <h2>Job queues</h2>
        <label className="live-toggle">
          <input type="checkbox" checked={live} onChange={(e) => setLive(e.target.checked)} /> live refresh
        </label>
      </div>
      {queues.error ? <p className="error-text">{queues.error}</p> : null}
      <table className="grid" data-testid="queues-table">
        <thead>
          <tr>
            <th>Job type</th>
            <th>Unlocked</th>
            <th>Locked</th>
            <th>Oldest waiting</th>
            <th>Retries exhausted</th>
            <th>Workers seen (last {Math.round((queues.data?.workerWindowSeconds ?? 300) / 60)} min)</th>
          </tr>
        </thead>
        <tbody>
          {(queues.data?.items ?? []).map((q) => (
            <tr key={q.jobType} data-testid={`queue-${q.jobType}`}>
              <td>
                <b>{q.jobType}</b>
              </td>
              <td data-testid="queue-unlocked">{q.unlocked}</td>
              <td data-testid="queue-locked">{q.locked}</td>
              <td>{q.oldestUnlockedAgeSeconds === null ? "—" : formatDuration(Math.round(q.oldestUnlockedAgeSeconds * 1000))}</td>
              <td data-testid="queue-exhausted" className={q.exhausted ? "error-text" : ""}>
                {q.exhausted}
              </td>
              <td data-testid="queue-workers">
                {q.workers.length
                  ? q.workers.map((w) => (
                      <span key={w.workerId} className="worker" title={`last seen ${when(w.lastSeenAt)}`}>
                        {w.workerId}
                      </span>
                    ))
                  : <span className="muted">none</span>}
              </td>
            </tr>
          ))}
          {queues.data && queues.data.items.length === 0 ? (
            <tr>
              <td colSpan={6} className="muted">
                No jobs and no workers.
              </td>
            </tr>
          ) : null}
        </tbody>
      </table>
      <h3>Retries exhausted ({exhausted.data?.total ?? "…"})</h3>
      <p className="muted">Jobs whose last attempt failed the instance; retrying runs the step again with a fresh retry budget.</p>
      <table className="grid" data-testid="exhausted-table">
        <thead>
          <tr>
            <th>Failed</th>
            <th>Job type</th>
            <th>Instance</th>
            <th>Step</th>
            <th>Worker</th>
            <th>Error</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(exhausted.data?.items ?? []).map((j) => (
            <tr key={j.jobId} data-testid={`exhausted-${j.instanceId}`}>
              <td>{when(j.failedAt)}</td>
              <td>{j.jobType}</td>
              <td>
                <a href={buildHash("instances", [j.instanceId])} className="mono">
                  {shortId(j.instanceId)}
                </a>{" "}
                <span className="muted">
                  {j.definitionId} v{j.definitionVersion}
                </span>
              </td>
              <td>{j.stepId}</td>
              <td className="mono">{j.workerId ?? ""}</td>
              <td className="error-text">{j.errorMessage ?? ""}</td>
              <td>
                <button onClick={() => setRetrying(j)} data-testid={`retry-${j.instanceId}`}>
                  Retry
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {retrying ? (
        <ConfirmDialog
          title={`Retry instance ${shortId(retrying.instanceId)} from step ${retrying.stepId}?`}
          confirmLabel="Retry"
          onConfirm={() => consoleApi.retry(retrying.instanceId)}
          onClose={(ok) => {
            setRetrying(null);
            if (ok) {
              queues.reload();
              exhausted.reload();
            }
          }}
        >
          <p>
            Last error: <b>{retrying.errorMessage}</b>
          </p>
        </ConfirmDialog>
      ) : null}
    </div>
  );
}
