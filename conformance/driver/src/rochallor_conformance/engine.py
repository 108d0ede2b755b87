"""The driver's view of an engine: the public API only, over REST or gRPC.

Results are plain dicts shaped like the REST resources. Errors are :class:`EngineError` with a
neutral ``kind`` (``bad_request``, ``not_found``, ``conflict``, ``other``) so that a scenario
can expect the same outcome whatever the transport.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

from rochallor_conformance.errors import ConformanceError

KINDS = ("bad_request", "not_found", "conflict", "other")

_HTTP_KINDS = {400: "bad_request", 404: "not_found", 409: "conflict"}
_GRPC_KINDS = {
    "INVALID_ARGUMENT": "bad_request",
    "NOT_FOUND": "not_found",
    "FAILED_PRECONDITION": "conflict",
}


class EngineError(ConformanceError):
    """The engine answered an error (or could not be reached: kind ``other``)."""

    def __init__(
        self, kind: str, status: int | str, text: str, body: Any = None, *, codes: bool = True
    ) -> None:
        self.kind = kind
        #: whether this surface names validation codes in its errors (gRPC does not)
        self.codes = codes
        self.status = status
        self.text = text
        self.body = body
        super().__init__(f"{status} ({kind}): {text}")


class Engine(Protocol):
    """What a scenario may do to an engine."""

    async def upload(self, definition: Mapping[str, Any]) -> dict[str, Any]: ...

    async def start(
        self,
        definition_id: str,
        variables: Mapping[str, Any] | None,
        *,
        business_key: str | None = None,
        version: int | None = None,
    ) -> dict[str, Any]: ...

    async def get(self, instance_id: str) -> dict[str, Any]: ...

    async def history(self, instance_id: str) -> list[dict[str, Any]]: ...

    async def list_instances(
        self,
        *,
        definition_id: str | None = None,
        status: str | None = None,
        business_key: str | None = None,
    ) -> list[dict[str, Any]]: ...

    async def cancel(self, instance_id: str, reason: str | None) -> dict[str, Any]: ...

    async def complete_user_task(
        self, instance_id: str, step_id: str, variables: Mapping[str, Any] | None
    ) -> None: ...

    async def signal(
        self, instance_id: str, step_id: str, body: Mapping[str, Any] | None
    ) -> None: ...

    async def poll(self, worker_id: str, job_types: Sequence[str]) -> list[dict[str, Any]]: ...

    async def complete_job(
        self, job_id: str, worker_id: str, variables: Mapping[str, Any] | None
    ) -> None: ...

    async def fail_job(
        self, job_id: str, worker_id: str, *, retryable: bool, error_message: str
    ) -> None: ...

    async def close(self) -> None: ...


def _segment(value: str) -> str:
    return quote(value, safe="")


class RestEngine:
    """The REST API (`rest-api.md`) through aiohttp."""

    def __init__(self, base_url: str, *, request_timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        send_body: bool = False,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        data = json.dumps(body).encode() if send_body else None
        headers = {"Content-Type": "application/json"} if send_body else {}
        try:
            async with self._http().request(
                method, self.base_url + path, data=data, headers=headers, params=params
            ) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise EngineError("other", "transport", f"{method} {path}: {exc!r}") from exc
        parsed: Any = None
        if text:
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
        if status >= 400:
            reason = parsed.get("reason", text) if isinstance(parsed, dict) else text
            raise EngineError(_HTTP_KINDS.get(status, "other"), status, str(reason), parsed)
        return parsed

    async def upload(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            "POST", "/v1/definitions", body=definition, send_body=True
        )
        return result

    async def start(
        self,
        definition_id: str,
        variables: Mapping[str, Any] | None,
        *,
        business_key: str | None = None,
        version: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"definitionId": definition_id, "variables": variables or {}}
        if business_key is not None:
            body["businessKey"] = business_key
        if version is not None:
            body["definitionVersion"] = version
        result: dict[str, Any] = await self._call(
            "POST", "/v1/instances", body=body, send_body=True
        )
        return result

    async def get(self, instance_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"/v1/instances/{_segment(instance_id)}")
        return result

    async def history(self, instance_id: str) -> list[dict[str, Any]]:
        result = await self._call("GET", f"/v1/instances/{_segment(instance_id)}/history")
        return list((result or {}).get("items") or [])

    async def list_instances(
        self,
        *,
        definition_id: str | None = None,
        status: str | None = None,
        business_key: str | None = None,
    ) -> list[dict[str, Any]]:
        params = {"page": "0", "pageSize": "200"}
        if definition_id is not None:
            params["definitionId"] = definition_id
        if status is not None:
            params["status"] = status
        if business_key is not None:
            params["businessKey"] = business_key
        result = await self._call("GET", "/v1/instances", params=params)
        return list((result or {}).get("items") or [])

    async def cancel(self, instance_id: str, reason: str | None) -> dict[str, Any]:
        body = {} if reason is None else {"reason": reason}
        result: dict[str, Any] = await self._call(
            "POST", f"/v1/instances/{_segment(instance_id)}/cancel", body=body, send_body=True
        )
        return result

    async def complete_user_task(
        self, instance_id: str, step_id: str, variables: Mapping[str, Any] | None
    ) -> None:
        path = f"/v1/instances/{_segment(instance_id)}/user-tasks/{_segment(step_id)}/complete"
        await self._call(
            "POST", path, body={"variables": variables, "workerId": "conformance"}, send_body=True
        )

    async def signal(self, instance_id: str, step_id: str, body: Mapping[str, Any] | None) -> None:
        path = f"/v1/instances/{_segment(instance_id)}/signals/{_segment(step_id)}"
        await self._call("POST", path, body=body, send_body=True)

    async def poll(self, worker_id: str, job_types: Sequence[str]) -> list[dict[str, Any]]:
        body = {"workerId": worker_id, "jobTypes": list(job_types), "maxJobs": 1}
        result = await self._call("POST", "/v1/jobs/poll", body=body, send_body=True)
        return list((result or {}).get("jobs") or [])

    async def complete_job(
        self, job_id: str, worker_id: str, variables: Mapping[str, Any] | None
    ) -> None:
        body = {"workerId": worker_id, "variables": variables or {}}
        await self._call("POST", f"/v1/jobs/{_segment(job_id)}/complete", body=body, send_body=True)

    async def fail_job(
        self, job_id: str, worker_id: str, *, retryable: bool, error_message: str
    ) -> None:
        body = {"workerId": worker_id, "retryable": retryable, "errorMessage": error_message}
        await self._call("POST", f"/v1/jobs/{_segment(job_id)}/fail", body=body, send_body=True)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class GrpcEngine:
    """The gRPC API ``workflow.v1`` through the generated client of the Python SDK.

    Needs the ``grpc`` extra (``rochallor-sdk``); imported lazily so that the REST driver has
    no dependency beyond aiohttp.
    """

    def __init__(self, target: str, *, request_timeout: float = 30.0) -> None:
        try:
            from rochallor_sdk.client import GrpcClient
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ConformanceError(
                "--grpc needs the grpc extra: pip install 'rochallor-conformance[grpc]'"
            ) from exc
        self._client = GrpcClient(target, request_timeout=request_timeout)

    async def _call(self, coro: Any) -> Any:
        from rochallor_sdk import ApiError, TransportError

        try:
            return await coro
        except ApiError as exc:
            status = str(exc.status)
            kind = _GRPC_KINDS.get(status, "other")
            raise EngineError(kind, status, exc.reason, codes=False) from exc
        except TransportError as exc:
            raise EngineError("other", "transport", exc.message) from exc

    async def upload(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(self._client.upload_definition(definition))
        return result

    async def start(
        self,
        definition_id: str,
        variables: Mapping[str, Any] | None,
        *,
        business_key: str | None = None,
        version: int | None = None,
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            self._client.start_instance(
                definition_id, variables or {}, version=version, business_key=business_key
            )
        )
        return result

    async def get(self, instance_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(self._client.get_instance(instance_id))
        return result

    async def history(self, instance_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._call(self._client.get_history(instance_id))
        return result

    async def list_instances(
        self,
        *,
        definition_id: str | None = None,
        status: str | None = None,
        business_key: str | None = None,
    ) -> list[dict[str, Any]]:
        page = await self._call(
            self._client.list_instances(
                definition_id=definition_id,
                status=status,
                business_key=business_key,
                page_size=200,
            )
        )
        return list(page.get("items") or [])

    async def cancel(self, instance_id: str, reason: str | None) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(self._client.cancel_instance(instance_id, reason))
        return result

    async def complete_user_task(
        self, instance_id: str, step_id: str, variables: Mapping[str, Any] | None
    ) -> None:
        await self._call(
            self._client.complete_user_task(
                instance_id, step_id, variables, worker_id="conformance"
            )
        )

    async def signal(self, instance_id: str, step_id: str, body: Mapping[str, Any] | None) -> None:
        await self._call(self._client.signal(instance_id, step_id, body))

    async def poll(self, worker_id: str, job_types: Sequence[str]) -> list[dict[str, Any]]:
        jobs = await self._call(
            self._client.poll(worker_id=worker_id, job_types=job_types, max_jobs=1, wait=0)
        )
        return [job.to_context() for job in jobs]

    async def complete_job(
        self, job_id: str, worker_id: str, variables: Mapping[str, Any] | None
    ) -> None:
        await self._call(self._client.complete(job_id, worker_id=worker_id, variables=variables))

    async def fail_job(
        self, job_id: str, worker_id: str, *, retryable: bool, error_message: str
    ) -> None:
        await self._call(
            self._client.fail(
                job_id, worker_id=worker_id, error_message=error_message, retryable=retryable
            )
        )

    async def close(self) -> None:
        await self._client.close()


async def wait_healthy(base_url: str, *, within: float) -> None:
    """Wait until ``GET /healthz`` answers 2xx."""
    deadline = asyncio.get_running_loop().time() + within
    last = ""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while True:
            try:
                async with http.get(base_url.rstrip("/") + "/healthz") as response:
                    if response.status < 300:
                        return
                    last = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = repr(exc)
            if asyncio.get_running_loop().time() > deadline:
                raise ConformanceError(f"engine at {base_url} not healthy: {last}")
            await asyncio.sleep(0.2)


class AuditReader:
    """Reads an instance's audit entries (``semantics.md`` §17) from the engine's PostgreSQL.

    The audit log has no API, so audit expectations are checked only when the driver is given
    the database (``--audit-dsn``); it reads the ``audit_log`` table of the documented schema
    (``semantics.md`` §20). Needs the ``audit`` extra (asyncpg).
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._pool: Any = None

    async def entries(self, instance_id: str) -> list[dict[str, Any]]:
        if self._pool is None:
            try:
                import asyncpg
            except ImportError as exc:  # pragma: no cover - depends on the installation
                raise ConformanceError(
                    "--audit-dsn needs the audit extra: pip install 'rochallor-conformance[audit]'"
                ) from exc
            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=4)
        rows = await self._pool.fetch(
            "SELECT kind, actor FROM audit_log WHERE instance_id = $1 ORDER BY id", instance_id
        )
        return [{"kind": row["kind"], "actor": row["actor"]} for row in rows]

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
