"""REST handlers of the operations side (what the console uses; all in the OpenAPI document).

Retrying FAILED instances (one, or many by ids or by filter), counts of instances per status,
the versions of a definition with their instance counts, an instance's audit log and chained
links, the job queues per job type and the jobs whose retries ran out. Registered before
:mod:`.routes`, whose ``/v1/instances/{id}`` would otherwise match ``/v1/instances/counts``.
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from rochallor_server.api.rest import serde
from rochallor_server.api.rest.errors import item_result
from rochallor_server.api.rest.filters import instance_filter
from rochallor_server.api.rest.routes import SERVICE_KEY
from rochallor_server.engine.model import InstanceStatus, JsonObject
from rochallor_server.errors import BadRequest
from rochallor_server.service.ports import AuditRecord, ExhaustedJob, JobQueue, VersionStats
from rochallor_server.service.workflow_service import MAX_BULK_RETRY, WorkflowService

routes = web.RouteTableDef()

DEFAULT_WORKER_WINDOW_SECONDS = 300
MAX_WORKER_WINDOW_SECONDS = 86_400
DEFAULT_AUDIT_LIMIT = 500
MAX_AUDIT_LIMIT = 1000


def _service(request: web.Request) -> WorkflowService:
    return request.app[SERVICE_KEY]


def _json(value: object, *, status: int = 200) -> web.Response:
    return web.Response(status=status, body=serde.dumps(value), content_type="application/json")


# -- encoding ----------------------------------------------------------------------------------


def version_stats(record: VersionStats) -> JsonObject:
    return {
        "id": record.id,
        "version": record.version,
        "name": record.name,
        "uploadedAt": serde.timestamp(record.uploaded_at),
        "instances": {s.value: record.instances.get(s.value, 0) for s in InstanceStatus},
    }


def audit_entry(record: AuditRecord) -> JsonObject:
    return {
        "id": record.id,
        "at": serde.timestamp(record.at),
        "actor": record.entry.actor,
        "kind": record.entry.kind,
        "detail": record.entry.detail,
        "principal": record.entry.principal,
    }


def job_queue(record: JobQueue, now: dt.datetime) -> JsonObject:
    oldest = record.oldest_unlocked_at
    return {
        "jobType": record.job_type,
        "unlocked": record.unlocked,
        "locked": record.locked,
        "oldestUnlockedAt": None if oldest is None else serde.timestamp(oldest),
        "oldestUnlockedAgeSeconds": (
            None if oldest is None else max((now - oldest).total_seconds(), 0.0)
        ),
        "exhausted": record.exhausted,
        "workers": [
            {"workerId": w.worker_id, "lastSeenAt": serde.timestamp(w.seen_at)}
            for w in record.workers
        ],
    }


def exhausted_job(record: ExhaustedJob) -> JsonObject:
    return {
        "jobId": record.id,
        "jobType": record.job_type,
        "instanceId": record.instance_id,
        "stepId": record.step_id,
        "workerId": record.worker_id,
        "failedAt": serde.timestamp(record.failed_at),
        "errorMessage": record.error_message,
        "definitionId": record.definition_id,
        "definitionVersion": record.definition_version,
    }


def _query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within ``low..high``; absent is ``default``, else 400."""
    raw = request.query.get(name)
    if raw is None:
        return default
    value = serde.parse_int(raw)
    if value is None or not low <= value <= high:
        raise BadRequest(f"{name} must be an integer from {low} to {high}")
    return value


# -- definitions -------------------------------------------------------------------------------


@routes.get("/v1/definitions/{id}/versions")
async def definition_versions(request: web.Request) -> web.Response:
    versions = await _service(request).definition_versions(request.match_info["id"])
    return _json({"items": [version_stats(v) for v in versions]})


# -- instances ---------------------------------------------------------------------------------


@routes.get("/v1/instances/counts")
async def instance_counts(request: web.Request) -> web.Response:
    counts = await _service(request).count_instances(
        filter=instance_filter(request.query, with_status=False)
    )
    return _json({"counts": counts, "total": sum(counts.values())})


@routes.post("/v1/instances/retry")
async def retry_instances(request: web.Request) -> web.Response:
    body = serde.Body.required(await request.read())
    instance_ids = body.strings("instanceIds")
    filter_body = body.json_object("filter")
    if (instance_ids is None) == (filter_body is None):
        raise BadRequest("exactly one of instanceIds and filter is required")
    if instance_ids is not None and not 1 <= len(instance_ids) <= MAX_BULK_RETRY:
        raise BadRequest(f"instanceIds must hold 1 to {MAX_BULK_RETRY} ids")
    limit = body.integer("limit")
    if limit is None:
        limit = 100
    if not 1 <= limit <= MAX_BULK_RETRY:
        raise BadRequest(f"limit must be between 1 and {MAX_BULK_RETRY}")
    instance_filter_ = None
    if filter_body is not None:
        if filter_body.get("status") not in (None, "FAILED"):
            raise BadRequest("filter.status must be FAILED when given")
        try:
            instance_filter_ = instance_filter(filter_body, with_status=False, json_body=True)
        except BadRequest as exc:
            raise BadRequest(f"filter.{exc.message}") from None
    results, matched = await _service(request).retry_instances(
        instance_ids=instance_ids,
        filter=instance_filter_,
        variables=body.json_object("variables"),
        limit=limit,
    )
    items: list[JsonObject] = []
    for result in results:
        if result.instance is not None:
            item: JsonObject = {"instanceId": result.instance_id, "status": 200}
            item["instance"] = serde.instance(result.instance)
        else:
            assert result.error is not None
            status, code, reason = item_result(result.error)
            item = {"instanceId": result.instance_id, "status": status}
            item.update(error=code, reason=reason)
        items.append(item)
    return _json({"results": items, "matched": matched})


@routes.post("/v1/instances/{id}/retry")
async def retry_instance(request: web.Request) -> web.Response:
    body = serde.Body.optional(await request.read())
    retried = await _service(request).retry_instance(
        request.match_info["id"], variables=body.json_object("variables")
    )
    return _json(serde.instance(retried))


@routes.get("/v1/instances/{id}/audit")
async def instance_audit(request: web.Request) -> web.Response:
    after = _query_int(request, "afterId", 0, 0, 2**63 - 1)
    limit = _query_int(request, "limit", DEFAULT_AUDIT_LIMIT, 1, MAX_AUDIT_LIMIT)
    entries = await _service(request).instance_audit(
        request.match_info["id"], after_id=after, limit=limit
    )
    return _json({"items": [audit_entry(e) for e in entries]})


@routes.get("/v1/instances/{id}/links")
async def instance_links(request: web.Request) -> web.Response:
    links = await _service(request).chain_links(request.match_info["id"])
    return _json({"parent": links.parent, "children": links.children})


# -- jobs --------------------------------------------------------------------------------------


@routes.get("/v1/jobs/queues")
async def job_queues(request: web.Request) -> web.Response:
    window = _query_int(
        request,
        "workerWindowSeconds",
        DEFAULT_WORKER_WINDOW_SECONDS,
        1,
        MAX_WORKER_WINDOW_SECONDS,
    )
    now, queues = await _service(request).job_queues(worker_window=dt.timedelta(seconds=window))
    return _json({"items": [job_queue(q, now) for q in queues], "workerWindowSeconds": window})


@routes.get("/v1/jobs/exhausted")
async def exhausted_jobs(request: web.Request) -> web.Response:
    page, page_size = serde.pagination(request.query)
    found = await _service(request).exhausted_jobs(
        job_type=request.query.get("jobType") or None, page=page, page_size=page_size
    )
    return _json(serde.page([exhausted_job(j) for j in found.items], found.total))


__all__ = ["routes"]
