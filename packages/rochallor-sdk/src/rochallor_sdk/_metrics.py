"""Worker metrics on a private prometheus ``CollectorRegistry``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class WorkerMetrics:
    """Metric objects for one worker. Each instance owns its registry, so several workers
    (or tests) in one process never collide on metric names."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.jobs_started = Counter(
            "rochallor_worker_jobs_started", "Jobs handed to a handler.", ["job_type"], registry=r
        )
        self.jobs_completed = Counter(
            "rochallor_worker_jobs_completed",
            "Jobs whose handler succeeded (completion reported).",
            ["job_type"],
            registry=r,
        )
        self.jobs_failed = Counter(
            "rochallor_worker_jobs_failed",
            "Jobs whose handler failed; retryable is 'true' or 'false'.",
            ["job_type", "retryable"],
            registry=r,
        )
        self.handler_duration = Histogram(
            "rochallor_worker_handler_duration_seconds",
            "Handler run time.",
            ["job_type"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.poll_duration = Histogram(
            "rochallor_worker_poll_duration_seconds",
            "Poll round-trip time, including any long-poll wait.",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.polls = Counter(
            "rochallor_worker_polls",
            "Poll calls by outcome: 'jobs', 'empty' or 'error'.",
            ["outcome"],
            registry=r,
        )
        self.in_flight = Gauge(
            "rochallor_worker_jobs_in_flight", "Jobs currently being handled.", registry=r
        )
        self.lease_extensions = Counter(
            "rochallor_worker_lease_extensions",
            "Lease extension attempts by outcome: 'ok', 'lost' or 'error'.",
            ["outcome"],
            registry=r,
        )
        self.leases_lost = Counter(
            "rochallor_worker_leases_lost",
            "Jobs whose lease this worker lost while the handler ran.",
            ["job_type"],
            registry=r,
        )
        self.report_errors = Counter(
            "rochallor_worker_report_errors",
            "Complete/fail calls the engine did not accept.",
            ["operation"],
            registry=r,
        )

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


__all__ = ["WorkerMetrics"]
