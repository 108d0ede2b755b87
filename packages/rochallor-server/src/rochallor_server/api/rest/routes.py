"""The REST handlers (``spec/rest-api.md`` §4-§8 plus this product's additions).

Each handler parses the request, calls one :class:`WorkflowService` method and encodes the result;
domain errors propagate to :func:`rochallor_server.api.rest.errors.error_middleware`.
"""

from __future__ import annotations

import asyncio
from importlib import resources

from aiohttp import web

from rochallor_server.api.rest import filters, serde, validation
from rochallor_server.api.rest.errors import item_result
from rochallor_server.config import DispatchMode
from rochallor_server.engine import limits
from rochallor_server.engine.model import Instance, JsonObject
from rochallor_server.errors import BadRequest
from rochallor_server.service.workflow_service import WorkflowService

SERVICE_KEY = web.AppKey("service", WorkflowService)
OPENAPI_KEY = web.AppKey("openapi", bytes)

# The REST default of ``maxJobs`` (gRPC's is 1, ``grpc-contract.md`` §3.1).
DEFAULT_MAX_JOBS = 10

# Reproduced verbatim (§2.4): the only error body without ``reason``.
KAFKA_POLL_BODY = serde.dumps(
    {
        "error": "poll path disabled",
        "dispatch_mode": "kafka_outbox",
        "hint": "consume directly from Kafka topic workflow.jobs.<jobType>",
    }
)

routes = web.RouteTableDef()


def _json(value: object, *, status: int = 200) -> web.Response:
    return web.Response(status=status, body=serde.dumps(value), content_type="application/json")


def _service(request: web.Request) -> WorkflowService:
    return request.app[SERVICE_KEY]


def load_openapi() -> bytes:
    return resources.files("rochallor_server.api.rest").joinpath("openapi.json").read_bytes()


# -- definitions -------------------------------------------------------------------------------


@routes.post("/v1/definitions")
async def upload_definition(request: web.Request) -> web.Response:
    # XML is turned away by the format guard middleware before this handler runs.
    document = serde.decode_definition(await request.read())
    result = await _service(request).upload_definition(document)
    return _json(serde.definition_summary(result.record, result.warnings), status=201)


# Registered before ``/v1/definitions/{id}`` routes; nothing is stored.
routes.post(validation.VALIDATE_PATH)(validation.validate_definition)


@routes.get("/v1/definitions")
async def list_definitions(request: web.Request) -> web.Response:
    page, page_size = serde.pagination(request.query)
    keyword = request.query.get("keyword") or None
    found = await _service(request).list_definitions(
        keyword=keyword, page=page, page_size=page_size
    )
    return _json(serde.page([serde.definition_summary(r) for r in found.items], found.total))


@routes.get("/v1/definitions/{id}")
async def get_definition(request: web.Request) -> web.Response:
    record = await _service(request).get_definition(request.match_info["id"], None)
    return _json(serde.definition(record))


@routes.get("/v1/definitions/{id}/versions/{version}")
async def get_definition_version(request: web.Request) -> web.Response:
    version = serde.parse_int(request.match_info["version"])
    if version is None:
        raise BadRequest("invalid version parameter")
    record = await _service(request).get_definition(request.match_info["id"], version)
    return _json(serde.definition(record))


# -- instances ---------------------------------------------------------------------------------


@routes.get("/v1/instances")
async def list_instances(request: web.Request) -> web.Response:
    page, page_size = serde.pagination(request.query)
    instance_filter = filters.instance_filter(request.query)
    found = await _service(request).list_instances(
        filter=instance_filter, page=page, page_size=page_size
    )
    return _json(serde.page([serde.instance(i) for i in found.items], found.total))


@routes.post("/v1/instances")
async def start_instance(request: web.Request) -> web.Response:
    body = serde.Body.required(await request.read())
    started = await _service(request).start_instance(
        definition_id=body.string("definitionId") or "",
        version=body.integer("definitionVersion"),
        variables=body.json_object("variables"),
        business_key=body.string("businessKey") or None,
    )
    return _json(serde.instance(started), status=201)


@routes.post("/v1/instances/batch")
async def start_instances(request: web.Request) -> web.Response:
    """This product's addition: start up to ``MAX_BATCH_STARTS`` instances in one request.

    Each item is the body of ``POST /v1/instances`` and gets the answer that request would
    have had, in request order: ``201`` with the instance, or its error status and reason.
    Starts that arrive together are decided on one read and written with one statement.
    """
    body = serde.Body.required(await request.read())
    items = body.objects("instances")
    if not items:
        raise BadRequest("instances must not be empty")
    if len(items) > limits.MAX_BATCH_STARTS:
        raise BadRequest(f"at most {limits.MAX_BATCH_STARTS} instances per request")
    engine = _service(request)

    async def start(n: int, item: serde.Body) -> Instance:
        try:
            definition_id = item.string("definitionId") or ""
            version = item.integer("definitionVersion")
            variables = item.json_object("variables")
            business_key = item.string("businessKey") or None
        except BadRequest as exc:
            raise BadRequest(f"instances[{n}]: {exc.message}") from None
        return await engine.start_instance(
            definition_id=definition_id,
            version=version,
            variables=variables,
            business_key=business_key,
        )

    outcomes = await asyncio.gather(
        *(start(n, item) for n, item in enumerate(items)), return_exceptions=True
    )
    results: list[JsonObject] = []
    for outcome in outcomes:
        if isinstance(outcome, Instance):
            results.append({"status": 201, "instance": serde.instance(outcome)})
        elif isinstance(outcome, Exception):
            status, code, reason = item_result(outcome)
            results.append({"status": status, "error": code, "reason": reason})
        else:
            raise outcome  # cancelled: the request is going away
    return _json({"results": results})


@routes.get("/v1/instances/{id}")
async def get_instance(request: web.Request) -> web.Response:
    found = await _service(request).get_instance(request.match_info["id"])
    return _json(serde.instance(found))


@routes.get("/v1/instances/{id}/history")
async def history(request: web.Request) -> web.Response:
    executions = await _service(request).history(request.match_info["id"])
    return _json({"items": [serde.step_execution(e) for e in executions]})


@routes.post("/v1/instances/{id}/cancel")
async def cancel_instance(request: web.Request) -> web.Response:
    raw = await request.read()
    # The body is optional and any problem with it means "no reason" (§2.2).
    try:
        reason = serde.Body.optional(raw).string("reason") or ""
    except BadRequest:
        reason = ""
    cancelled = await _service(request).cancel_instance(request.match_info["id"], reason)
    return _json(serde.instance(cancelled))


@routes.post("/v1/instances/{instanceId}/user-tasks/{userTaskId}/complete")
async def complete_user_task(request: web.Request) -> web.Response:
    body = serde.Body.optional(await request.read())
    # OpenAPI's ``result``/``completedBy`` are aliases used only when the
    # reference's ``variables``/``workerId`` are absent (§8.1).
    variables = body.json_object("variables")
    if variables is None:
        variables = body.json_object("result")
    completed_by = body.string("workerId")
    if completed_by is None:
        completed_by = body.string("completedBy")
    await _service(request).complete_user_task(
        request.match_info["instanceId"],
        request.match_info["userTaskId"],
        variables=variables,
        completed_by=completed_by,
    )
    return web.Response(status=204)


@routes.post("/v1/instances/{instanceId}/signals/{waitStepId}")
async def signal(request: web.Request) -> web.Response:
    variables = serde.variables_body(await request.read())
    await _service(request).signal(
        request.match_info["instanceId"], request.match_info["waitStepId"], variables
    )
    return web.Response(status=204)


# -- jobs --------------------------------------------------------------------------------------


@routes.post("/v1/jobs/poll")
async def poll_jobs(request: web.Request) -> web.Response:
    # the dispatch mode is the service's setting, read as the gRPC edge reads it
    if _service(request).settings.dispatch_mode is DispatchMode.KAFKA_OUTBOX:
        return web.Response(status=410, body=KAFKA_POLL_BODY, content_type="application/json")
    body = serde.Body.required(await request.read())
    max_jobs = body.integer("maxJobs")
    if max_jobs is None or max_jobs <= 0:
        max_jobs = DEFAULT_MAX_JOBS
    wait_ms = body.integer("waitMs") or 0
    if wait_ms < 0:
        raise BadRequest("waitMs must not be negative")
    # ``leaseSeconds`` is accepted and ignored: the lease is the server's (§7.1).
    jobs = await _service(request).poll_jobs(
        worker_id=body.string("workerId") or "",
        job_types=body.strings("jobTypes") or [],
        max_jobs=max_jobs,
        wait_seconds=wait_ms / 1000,
        encode=serde.encoded_job,
    )
    return web.Response(body=serde.jobs_answer(jobs), content_type="application/json")


@routes.post("/v1/jobs/{id}/complete")
async def complete_job(request: web.Request) -> web.Response:
    body = serde.Body.required(await request.read())
    await _service(request).complete_job(
        request.match_info["id"],
        worker_id=body.string("workerId"),
        variables=body.json_object("variables"),
    )
    return web.Response(status=204)


@routes.post("/v1/jobs/batch-complete")
async def batch_complete_jobs(request: web.Request) -> web.Response:
    """This product's addition: complete up to ``MAX_BATCH_COMPLETIONS`` jobs in one request.

    Each completion is the single-job completion, with its own result in request order (the
    status that ``POST /v1/jobs/{id}/complete`` would have answered); the engine writes
    completions that arrive together in one statement, so workers save a request per job.
    """
    body = serde.Body.required(await request.read())
    worker_id = body.string("workerId")
    items = body.objects("completions")
    if not items:
        raise BadRequest("completions must not be empty")
    if len(items) > limits.MAX_BATCH_COMPLETIONS:
        raise BadRequest(f"at most {limits.MAX_BATCH_COMPLETIONS} completions per request")
    completions = [_completion(n, item) for n, item in enumerate(items)]
    engine = _service(request)
    outcomes = await asyncio.gather(
        *(
            engine.complete_job(job_id, worker_id=worker_id, variables=v)
            for job_id, v in completions
        ),
        return_exceptions=True,
    )
    results: list[JsonObject] = []
    for (job_id, _), outcome in zip(completions, outcomes, strict=True):
        if outcome is None:
            results.append({"jobId": job_id, "status": 204})
        elif isinstance(outcome, Exception):
            status, code, reason = item_result(outcome)
            results.append({"jobId": job_id, "status": status, "error": code, "reason": reason})
        else:
            raise outcome  # cancelled: the request is going away
    return _json({"results": results})


def _completion(n: int, item: serde.Body) -> tuple[str, JsonObject | None]:
    try:
        job_id = item.string("jobId")
        if not job_id:
            raise BadRequest("jobId is required")
        return job_id, item.json_object("variables")
    except BadRequest as exc:
        raise BadRequest(f"completions[{n}]: {exc.message}") from None


@routes.post("/v1/jobs/{id}/fail")
async def fail_job(request: web.Request) -> web.Response:
    body = serde.Body.required(await request.read())
    await _service(request).fail_job(
        request.match_info["id"],
        worker_id=body.string("workerId"),
        error_message=body.string("errorMessage"),
        retryable=body.boolean("retryable") or False,
    )
    return web.Response(status=204)


@routes.post("/v1/jobs/{id}/extend")
async def extend_job_lease(request: web.Request) -> web.Response:
    body = serde.Body.required(await request.read())
    expires = await _service(request).extend_job_lease(
        request.match_info["id"], worker_id=body.string("workerId") or ""
    )
    return _json({"lockExpiresAt": serde.timestamp(expires)})


# -- service -----------------------------------------------------------------------------------


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    return web.Response(status=200)


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """200 while the database answers; 503 ``unavailable`` (with ``Retry-After``) otherwise.

    ``/healthz`` stays a liveness check (the wire contract: 2xx, empty body, no database)."""
    await _service(request).check_database()
    return _json({"database": "up"})


@routes.get("/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI_KEY], content_type="application/json")
