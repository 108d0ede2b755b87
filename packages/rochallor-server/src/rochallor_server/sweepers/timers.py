"""Due boundary timers fire."""

from __future__ import annotations

from rochallor_server.service.ports import Store
from rochallor_server.service.workflow_service import WorkflowService
from rochallor_server.sweepers.base import PeriodicTask

TIMER_SWEEPER_LOCK_KEY = 7815275248343610483


def timer_sweeper(service: WorkflowService, store: Store, interval: float) -> PeriodicTask:
    return PeriodicTask(
        "timer-sweeper",
        service.fire_due_timers,
        interval=interval,
        store=store,
        lock_key=TIMER_SWEEPER_LOCK_KEY,
    )
