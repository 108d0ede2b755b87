"""Chained starts that a crash or a shutdown left undone are made."""

from __future__ import annotations

from rochallor_server.service.workflow_service import WorkflowService
from rochallor_server.sweepers.base import PeriodicTask


def chain_sweeper(service: WorkflowService, interval: float) -> PeriodicTask:
    # No advisory lock: each request is claimed with FOR UPDATE SKIP LOCKED, so replicas
    # sweeping together share the requests instead of waiting for each other.
    return PeriodicTask("chain-sweeper", service.run_pending_chains, interval=interval)
