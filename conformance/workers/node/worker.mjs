// Conformance worker in plain Node.js (>= 18): global fetch, no dependencies, no Rochallor code.
// It implements the worker protocol of docs/conformance.md over the REST API only, to show that
// the suite measures any worker written against the wire contract.
//
//   ROCHALLOR_ENGINE_URL=http://localhost:8080 ROCHALLOR_CONFORMANCE_SCRIPT=script.json \
//     node conformance/workers/node/worker.mjs

import { readFileSync } from "node:fs";

const engineUrl = (process.env.ROCHALLOR_ENGINE_URL || "").replace(/\/+$/, "");
const scriptPath = process.env.ROCHALLOR_CONFORMANCE_SCRIPT;
if (!engineUrl || !scriptPath) {
  console.error("ROCHALLOR_ENGINE_URL and ROCHALLOR_CONFORMANCE_SCRIPT are required");
  process.exit(2);
}
const script = JSON.parse(readFileSync(scriptPath, "utf8"));
const jobTypes = Object.keys(script.jobTypes);
const workerId = `conformance-node-${process.pid}`;
const attempts = new Map(); // job id -> attempts seen by this worker
let stopping = false;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function post(path, body) {
  const response = await fetch(engineUrl + path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) {
    throw new Error(`POST ${path}: HTTP ${response.status} ${text}`);
  }
  return text ? JSON.parse(text) : null;
}

function nextBehaviour(job) {
  const n = (attempts.get(job.id) || 0) + 1;
  attempts.set(job.id, n);
  const list = script.jobTypes[job.jobType].attempts;
  return list[Math.min(n, list.length) - 1];
}

function leaseSeconds(job) {
  if (!job.lockExpiresAt) return 30;
  return Math.max((Date.parse(job.lockExpiresAt) - Date.now()) / 1000, 0);
}

async function handle(job) {
  const behaviour = nextBehaviour(job);
  if (behaviour.action === "abandon") return; // as if the worker had crashed
  const lease = leaseSeconds(job);
  let remaining = (behaviour.delaySeconds || 0) + (behaviour.delayLeases || 0) * lease;
  const extend = behaviour.extendLease !== false; // keep the lease unless told not to
  while (remaining > 0) {
    const step = extend ? Math.min(remaining, Math.max(lease / 3, 0.05)) : remaining;
    await sleep(step * 1000);
    remaining -= step;
    if (extend && remaining > 0) {
      try {
        await post(`/v1/jobs/${encodeURIComponent(job.id)}/extend`, { workerId });
      } catch (error) {
        console.error(`extend ${job.id}: ${error.message}`);
      }
    }
  }
  const id = encodeURIComponent(job.id);
  if (behaviour.action === "complete") {
    await post(`/v1/jobs/${id}/complete`, { workerId, variables: behaviour.variables || {} });
  } else {
    await post(`/v1/jobs/${id}/fail`, {
      workerId,
      retryable: Boolean(behaviour.retryable),
      errorMessage: behaviour.errorMessage || "",
    });
  }
}

async function pollLoop() {
  while (!stopping) {
    let jobs = [];
    try {
      const answer = await post("/v1/jobs/poll", { workerId, jobTypes, maxJobs: 16, waitMs: 1000 });
      jobs = (answer && answer.jobs) || [];
    } catch (error) {
      console.error(`poll: ${error.message}`);
      await sleep(500);
      continue;
    }
    for (const job of jobs) {
      handle(job).catch((error) => console.error(`job ${job.id}: ${error.message}`));
    }
    if (jobs.length === 0) await sleep(50);
  }
}

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    stopping = true;
    process.exit(0);
  });
}

if (jobTypes.length === 0) {
  setInterval(() => {}, 1 << 30); // nothing to do; wait for the signal
} else {
  pollLoop();
}
