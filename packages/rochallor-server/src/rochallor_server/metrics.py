"""Prometheus series of the server (names from the reference engine, ``semantics.md`` §19).

Each :class:`Metrics` owns its registry, so several servers can run in one process (tests).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self, *, polling: bool = True) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.definitions_uploaded = Counter(
            "workflow_definitions_uploaded_total", "New definition versions stored", registry=r
        )
        self.instances_started = Counter(
            "workflow_instances_started_total", "Instances created", registry=r
        )
        self.instances_completed = Counter(
            "workflow_instances_completed_total",
            "Instances that reached a terminal state",
            ["outcome"],
            registry=r,
        )
        self.steps_executed = Counter(
            "workflow_steps_executed_total", "Step executions created", ["step_type"], registry=r
        )
        self.job_retries = Counter("job_retries_total", "Retryable job failures", registry=r)
        self.job_timeouts = Counter(
            "engine_job_timeout_total", "Jobs reclaimed by the lease sweeper", registry=r
        )
        self.tx_duration = Histogram(
            "engine_db_transaction_duration_seconds",
            "Engine transaction duration",
            ["tx_type"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "engine_batch_size",
            "Events decided and written together by one group-commit batch",
            ["batcher"],
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.instance_conflicts = Counter(
            "engine_instance_conflicts_total",
            "Events decided again because another event wrote their instance first",
            registry=r,
        )
        self.poll_waiters = Gauge(
            "engine_poll_waiters", "Long polls waiting for jobs now", registry=r
        )
        self.poll_waiters_refused = Counter(
            "engine_poll_waiters_refused_total",
            "Long polls answered without waiting: the waiter cap (WE_MAX_POLL_WAITERS) was reached",
            registry=r,
        )
        # The reference's name (``semantics.md`` §11); writes here take no lock held across
        # the decision: the series is the duration of an event's write statement.
        self.write_duration = Histogram(
            "engine_db_lock_wait_duration_seconds",
            "Duration of an event's write statement (no lock is held across the decision)",
            ["operation"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.http_duration = Histogram(
            "http_requests_duration_seconds",
            "REST request duration",
            ["method", "path", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.grpc_duration = Histogram(
            "grpc_requests_duration_seconds",
            "gRPC call duration",
            ["method", "code"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.polling = polling
        if polling:
            self.job_poll_latency = Histogram(
                "job_poll_latency_seconds",
                "Job created to first claim",
                buckets=_LATENCY_BUCKETS,
                registry=r,
            )
            # The reference's name: a poll that found no job to claim.
            self.empty_polls = Counter(
                "job_lock_conflicts_total", "Polls that returned no job", registry=r
            )
            self.job_pickup_latency = Histogram(
                "engine_job_pickup_latency_seconds",
                "Per claimed job: claim time minus creation time",
                buckets=_LATENCY_BUCKETS,
                registry=r,
            )

        else:
            self._register_kafka()

    def _register_kafka(self) -> None:
        """``kafka_outbox`` mode's series (``kafka-dispatch.md`` §10)."""
        r = self.registry
        self.outbox_backlog = Gauge(
            "workflow_engine_dispatch_outbox_backlog",
            "Rows waiting in dispatch_outbox (sampled by the relay leader)",
            registry=r,
        )
        self.relay_lag = Gauge(
            "workflow_engine_dispatch_relay_lag_seconds",
            "Age of the oldest unpublished outbox row (sampled by the relay leader)",
            registry=r,
        )
        self.relay_publish = Counter(
            "workflow_engine_dispatch_relay_publish_total",
            "Outbox rows handed to the broker, by outcome",
            ["result"],
            registry=r,
        )
        self.relay_batch_latency = Histogram(
            "workflow_engine_dispatch_relay_batch_latency_seconds",
            "Duration of one relay drain cycle",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.relay_leader = Gauge(
            "workflow_engine_dispatch_relay_leader",
            "1 while this replica holds the relay lock",
            registry=r,
        )
        self.producer_errors = Counter(
            "workflow_engine_kafka_producer_errors_total",
            "Produce failures (context: timed out or cancelled; client: the client failed)",
            ["code"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "workflow_engine_kafka_consumer_lag_seconds",
            "Registered for compatibility; the engine consumes nothing",
            ["topic", "group", "partition"],
            registry=r,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
