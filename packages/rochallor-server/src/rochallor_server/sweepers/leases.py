"""Expired job leases back to claimable."""

from __future__ import annotations

from rochallor_server.service.ports import Store
from rochallor_server.service.workflow_service import WorkflowService
from rochallor_server.sweepers.base import PeriodicTask

LEASE_SWEEPER_LOCK_KEY = 7815275248343610161


def lease_sweeper(service: WorkflowService, store: Store, interval: float) -> PeriodicTask:
    return PeriodicTask(
        "lease-sweeper",
        service.reclaim_expired_leases,
        interval=interval,
        store=store,
        lock_key=LEASE_SWEEPER_LOCK_KEY,
    )
