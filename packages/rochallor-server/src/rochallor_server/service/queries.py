"""The service's read-only queries: each checks its input, reads in one session and writes
nothing. They are not retried (a read that fails is the answer) and need no tracking (a caller
that goes away loses nothing). :class:`~.workflow_service.WorkflowService` is built on
:class:`Queries`, which also opens and times every session of the service (``_session``).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs

from rochallor_server.engine import limits
from rochallor_server.engine.clock import Clock
from rochallor_server.engine.model import DefinitionRecord, Instance, InstanceStatus, StepExecution
from rochallor_server.errors import NotFound
from rochallor_server.metrics import Metrics
from rochallor_server.service.ports import (
    AuditRecord,
    ChainLinks,
    ExhaustedJob,
    InstanceFilter,
    JobQueue,
    Page,
    Session,
    Store,
    VersionStats,
)


class Queries:
    """Definitions, instances, their history, audit and links, job queues; and the database
    sessions of the whole service."""

    store: Store
    metrics: Metrics
    clock: Clock

    @asynccontextmanager
    async def _session(self, kind: str, *, transaction: bool = False) -> AsyncIterator[Session]:
        """A database session, timed as ``kind``: each statement commits on its own, or all
        of them together with ``transaction``."""
        started = time.perf_counter()
        scope = self.store.transaction() if transaction else self.store.session()
        try:
            async with scope as tx:
                yield tx
        finally:
            self.metrics.tx_duration.labels(kind).observe(time.perf_counter() - started)

    async def get_definition(self, definition_id: str, version: int | None) -> DefinitionRecord:
        """Latest when ``version`` is None. Raises ``NotFound`` (``definition not found``)."""
        limits.identifier("id", definition_id)
        if version is not None and not 1 <= version <= limits.MAX_VERSION:
            raise NotFound("definition not found")
        async with self._session("get_definition") as tx:
            if version is None:
                record = await tx.latest_definition(definition_id)
            else:
                record = await tx.definition(definition_id, version)
        if record is None:
            raise NotFound("definition not found")
        return record

    async def list_definitions(
        self, *, keyword: str | None, page: int, page_size: int
    ) -> Page[DefinitionRecord]:
        limits.identifier("keyword", keyword)
        offset, limit = paging(page, page_size)
        async with self._session("list_definitions", transaction=True) as tx:
            return await tx.list_definitions(keyword=keyword or None, offset=offset, limit=limit)

    async def definition_versions(self, definition_id: str) -> list[VersionStats]:
        """Every version with its instance counts per status; ``NotFound`` for an unknown id."""
        limits.identifier("id", definition_id)
        async with self._session("definition_versions") as tx:
            versions = await tx.definition_versions(definition_id)
        if not versions:
            raise NotFound("definition not found")
        return versions

    async def get_instance(self, instance_id: str) -> Instance:
        limits.identifier("id", instance_id)
        async with self._session("get_instance") as tx:
            instance = await tx.get_instance(instance_id)
        if instance is None:
            raise NotFound(f'instance "{instance_id}" not found')
        return instance

    async def list_instances(
        self, *, filter: InstanceFilter, page: int, page_size: int
    ) -> Page[Instance]:
        check_filter(filter)
        offset, limit = paging(page, page_size)
        async with self._session("list_instances", transaction=True) as tx:
            return await tx.list_instances(filter=filter, offset=offset, limit=limit)

    async def history(self, instance_id: str) -> list[StepExecution]:
        limits.identifier("id", instance_id)
        async with self._session("history") as tx:
            return await tx.history(instance_id)

    async def count_instances(self, *, filter: InstanceFilter) -> dict[str, int]:
        """Instances per status for the filter (its status ignored); every status present."""
        check_filter(attrs.evolve(filter, status=None))
        async with self._session("count_instances") as tx:
            counts = await tx.count_instances(filter=filter)
        return {s.value: counts.get(s.value, 0) for s in InstanceStatus}

    async def instance_audit(
        self, instance_id: str, *, after_id: int, limit: int
    ) -> list[AuditRecord]:
        limits.identifier("id", instance_id)
        async with self._session("instance_audit") as tx:
            if await tx.get_instance(instance_id) is None:
                raise NotFound(f'instance "{instance_id}" not found')
            return await tx.instance_audit(
                instance_id, after_id=max(after_id, 0), limit=min(max(limit, 1), 1000)
            )

    async def chain_links(self, instance_id: str) -> ChainLinks:
        limits.identifier("id", instance_id)
        async with self._session("chain_links") as tx:
            if await tx.get_instance(instance_id) is None:
                raise NotFound(f'instance "{instance_id}" not found')
            return await tx.chain_links(instance_id)

    async def job_queues(
        self, *, worker_window: dt.timedelta
    ) -> tuple[dt.datetime, list[JobQueue]]:
        """When, and per job type: open jobs, the oldest waiting, exhausted jobs, workers seen
        within ``worker_window`` (polling workers are recorded at most every few seconds)."""
        now = self.clock.now()
        async with self._session("job_queues") as tx:
            return now, await tx.job_queues(seen_since=now - worker_window)

    async def exhausted_jobs(
        self, *, job_type: str | None, page: int, page_size: int
    ) -> Page[ExhaustedJob]:
        limits.identifier("jobType", job_type)
        offset, limit = paging(page, page_size)
        async with self._session("exhausted_jobs") as tx:
            return await tx.exhausted_jobs(job_type=job_type, offset=offset, limit=limit)

    async def check_database(self) -> None:
        """Raise ``StorageUnavailable`` unless the database answers now (readiness)."""
        await self.store.ping()


def check_filter(filter: InstanceFilter, prefix: str = "") -> None:
    """The filter's fields, under the field names of the API (``prefix`` before each)."""
    limits.identifier(f"{prefix}definitionId", filter.definition_id)
    limits.identifier(f"{prefix}status", filter.status)
    limits.identifier(f"{prefix}businessKey", filter.business_key)
    limits.version(f"{prefix}definitionVersion", filter.definition_version)


def paging(page: int, page_size: int) -> tuple[int, int]:
    """(offset, limit) of a page: page and size clamped to the limits, a size of 0 the default."""
    page = min(max(page, 0), limits.MAX_PAGE)
    if page_size <= 0:
        page_size = limits.DEFAULT_PAGE_SIZE
    page_size = min(page_size, limits.MAX_PAGE_SIZE)
    return page * page_size, page_size
