// Instances: filters, counts per status, paging, live refresh, bulk retry of FAILED ones.
import { useEffect, useState } from "react";
import { api } from "../shared/api";
import { buildHash, navigate, type Route } from "../shell/router";
import { consoleApi, type InstanceQuery, STATUSES } from "./api";
import { ConfirmDialog } from "./ConfirmDialog";
import { localToIso, shortId, when } from "./format";
import { InstanceDetail } from "./InstanceDetail";
import { JsonObjectInput, parseObject } from "./JsonForm";
import { usePolling } from "./usePolling";

const PAGE_SIZE = 20;
const FILTER_KEYS = ["status", "definitionId", "definitionVersion", "businessKey", "startedAfter", "startedBefore"] as const;

function filterOf(route: Route): InstanceQuery {
  const filter: InstanceQuery = {};
  for (const key of FILTER_KEYS) {
    const value = route.query.get(key);
    if (value) filter[key] = value;
  }
  return filter;
}

export function Instances({ route }: { route: Route }) {
  if (route.segments[0]) return <InstanceDetail id={route.segments[0]} />;
  return <InstanceList route={route} />;
}

function InstanceList({ route }: { route: Route }) {
  const filter = filterOf(route);
  const page = Number(route.query.get("page") ?? "0") || 0;
  const [live, setLive] = useState(true);
  const [draft, setDraft] = useState<Record<string, string>>(() => ({
    ...filter,
    startedAfter: "",
    startedBefore: "",
  }));
  const [bulk, setBulk] = useState(false);
  const [patch, setPatch] = useState("");
  const [bulkResult, setBulkResult] = useState<string | null>(null);
  const key = JSON.stringify([filter, page]);
  const filterKey = JSON.stringify(filter);
  useEffect(() => {
    // the filter changed from outside the form (a count chip, a link): show it in the form
    const shown = JSON.parse(filterKey) as InstanceQuery;
    setDraft({ ...shown, startedAfter: "", startedBefore: "" } as Record<string, string>);
  }, [filterKey]);
  const listing = usePolling(() => consoleApi.instances(filter, page, PAGE_SIZE), [key], live);
  const counts = usePolling(() => consoleApi.counts(filter), [key], live);
  const definitions = usePolling(() => api.listDefinitions("", 0, 200), [], false);

  const go = (next: InstanceQuery, nextPage = 0) => {
    const query: Record<string, string> = {};
    for (const [k, v] of Object.entries(next)) if (v) query[k] = v;
    if (nextPage) query.page = String(nextPage);
    navigate("instances", [], query);
  };
  const apply = () =>
    go({
      status: draft.status,
      definitionId: draft.definitionId,
      definitionVersion: draft.definitionVersion,
      businessKey: draft.businessKey,
      startedAfter: localToIso(draft.startedAfter) || filter.startedAfter,
      startedBefore: localToIso(draft.startedBefore) || filter.startedBefore,
    });
  const total = listing.data?.total ?? 0;
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  const failedCount = counts.data?.counts.FAILED ?? 0;
  const patchParsed = parseObject(patch);

  return (
    <div className="page console" data-testid="instances-page">
      <div className="page-head">
        <h2>Instances</h2>
        <label className="live-toggle">
          <input type="checkbox" checked={live} onChange={(e) => setLive(e.target.checked)} data-testid="live-refresh" />{" "}
          live refresh
        </label>
        <span className="muted" data-testid="refreshed-at">
          {listing.at ? `updated ${listing.at.toLocaleTimeString(undefined, { hour12: false })}` : ""}
        </span>
      </div>
      <div className="status-chips" data-testid="status-counts">
        <button
          className={`chip ${!filter.status ? "selected" : ""}`}
          onClick={() => go({ ...filter, status: undefined })}
          data-testid="count-ALL"
        >
          All <b>{counts.data?.total ?? "…"}</b>
        </button>
        {STATUSES.map((s) => (
          <button
            key={s}
            className={`chip chip-${s.toLowerCase()} ${filter.status === s ? "selected" : ""}`}
            onClick={() => go({ ...filter, status: s })}
            data-testid={`count-${s}`}
          >
            {s} <b>{counts.data?.counts[s] ?? "…"}</b>
          </button>
        ))}
      </div>
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault();
          apply();
        }}
      >
        <label>
          Status
          <select value={draft.status ?? ""} onChange={(e) => setDraft({ ...draft, status: e.target.value })} data-testid="filter-status">
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Definition
          <select
            value={draft.definitionId ?? ""}
            onChange={(e) => setDraft({ ...draft, definitionId: e.target.value, definitionVersion: "" })}
            data-testid="filter-definition"
          >
            <option value="">any</option>
            {(definitions.data?.items ?? []).map((d) => (
              <option key={d.id} value={d.id}>
                {d.id}
              </option>
            ))}
          </select>
        </label>
        <label>
          Version
          <input
            className="narrow"
            type="number"
            min={1}
            value={draft.definitionVersion ?? ""}
            onChange={(e) => setDraft({ ...draft, definitionVersion: e.target.value })}
            data-testid="filter-version"
          />
        </label>
        <label>
          Business key
          <input value={draft.businessKey ?? ""} onChange={(e) => setDraft({ ...draft, businessKey: e.target.value })} data-testid="filter-business-key" />
        </label>
        <label>
          Started after
          <input type="datetime-local" value={draft.startedAfter} onChange={(e) => setDraft({ ...draft, startedAfter: e.target.value })} data-testid="filter-started-after" />
        </label>
        <label>
          Started before
          <input type="datetime-local" value={draft.startedBefore} onChange={(e) => setDraft({ ...draft, startedBefore: e.target.value })} data-testid="filter-started-before" />
        </label>
        <button className="primary" type="submit" data-testid="filter-apply">
          Apply
        </button>
        <button
          type="button"
          onClick={() => {
            setDraft({ startedAfter: "", startedBefore: "" });
            go({});
          }}
        >
          Clear
        </button>
        <button type="button" disabled={failedCount === 0} onClick={() => setBulk(true)} data-testid="bulk-retry">
          Retry FAILED ({failedCount})
        </button>
      </form>
      {filter.startedAfter || filter.startedBefore ? (
        <p className="muted">
          Started {filter.startedAfter ? `from ${when(filter.startedAfter)}` : ""}{" "}
          {filter.startedBefore ? `before ${when(filter.startedBefore)}` : ""}
        </p>
      ) : null}
      {bulkResult ? (
        <p className="ops-notice" data-testid="bulk-result">
          {bulkResult}
        </p>
      ) : null}
      {listing.error ? <p className="error-text">{listing.error}</p> : null}
      <table className="grid" data-testid="instances-table">
        <thead>
          <tr>
            <th>Instance</th>
            <th>Status</th>
            <th>Definition</th>
            <th>Business key</th>
            <th>Current steps</th>
            <th>Started</th>
            <th>Ended</th>
          </tr>
        </thead>
        <tbody>
          {(listing.data?.items ?? []).map((i) => (
            <tr key={i.id} data-testid={`instance-row-${i.id}`} data-status={i.status}>
              <td>
                <a href={buildHash("instances", [i.id])} className="mono" title={i.id}>
                  {shortId(i.id)}
                </a>
              </td>
              <td>
                <span className={`status status-${i.status.toLowerCase()}`} data-testid="row-status">
                  {i.status}
                </span>
              </td>
              <td>
                {i.definitionId} <span className="muted">v{i.definitionVersion}</span>
              </td>
              <td>{i.businessKey ?? ""}</td>
              <td>{i.currentStepIds.join(", ")}</td>
              <td>{when(i.startedAt)}</td>
              <td title={i.failureReason}>{when(i.completedAt)}</td>
            </tr>
          ))}
          {listing.data && listing.data.items.length === 0 ? (
            <tr>
              <td colSpan={7} className="muted">
                No instances match.
              </td>
            </tr>
          ) : null}
        </tbody>
      </table>
      <div className="pager">
        <button disabled={page <= 0} onClick={() => go(filter, page - 1)}>
          ‹ Previous
        </button>
        <span data-testid="pager">
          page {page + 1} of {pages} · {total} instances
        </span>
        <button disabled={page + 1 >= pages} onClick={() => go(filter, page + 1)}>
          Next ›
        </button>
      </div>
      {bulk ? (
        <ConfirmDialog
          title={`Retry the FAILED instances matching this filter (${failedCount})?`}
          confirmLabel="Retry all"
          invalid={patchParsed.error ? `Variables ${patchParsed.error}` : null}
          onConfirm={async () => {
            const answer = await consoleApi.retryMatching(filter, patch.trim() ? patchParsed.value ?? undefined : undefined, 500);
            const ok = answer.results.filter((r) => r.status === 200).length;
            const refused = answer.results.filter((r) => r.status !== 200);
            setBulkResult(
              `Retried ${ok} of ${answer.matched} matching FAILED instances` +
                (refused.length ? `; refused: ${refused.map((r) => `${shortId(r.instanceId)} (${r.reason})`).join(", ")}` : ""),
            );
            listing.reload();
            counts.reload();
          }}
          onClose={() => setBulk(false)}
        >
          <p>Each one runs its failed step again, with a fresh retry budget.</p>
          <label>
            Variables to set first (optional JSON object)
            <JsonObjectInput text={patch} onText={setPatch} testId="bulk-variables" rows={3} />
          </label>
        </ConfirmDialog>
      ) : null}
    </div>
  );
}
