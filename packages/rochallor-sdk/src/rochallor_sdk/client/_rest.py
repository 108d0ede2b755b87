"""REST transport (aiohttp): the worker's job calls and the admin calls."""

from __future__ import annotations

import datetime
import json
import ssl
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp
import aiohttp.connector

from rochallor_sdk import _errors, _security
from rochallor_sdk.client import _base, _convert

_JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}

#: On Pythons whose asyncio can leave a closed TLS connection open while its close_notify
#: exchange waits for the peer (before 3.12.8, and 3.13.0), aiohttp aborts such connections
#: itself when asked to, and at the latest when the session closes. aiohttp knows which
#: Pythons those are (and warns when asked on the others).
_ABORT_CLOSED_TLS: bool = getattr(aiohttp.connector, "NEEDS_CLEANUP_CLOSED", False)


class RestClient(_base.ClosingClient):
    """Talks to the engine's REST API (``rest-api.md``); implements ``JobClient`` and
    ``AdminClient``.

    Pass an existing ``session`` to share a connection pool; otherwise the client creates
    one lazily and closes it in :meth:`close` (or at the end of ``async with``).
    ``token``, when given, is sent on every request as ``Authorization: Bearer <token>``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        request_timeout: float = 10.0,
        token: str | None = None,
        tls: ssl.SSLContext | bool | None = None,
    ) -> None:
        """``token``: API key or JWT (default ``ROCHALLOR_TOKEN``). ``tls``: an SSL context,
        ``True``, or ``None`` (TLS for ``https://`` URLs, from ``ROCHALLOR_TLS_*``)."""
        if "://" not in base_url:
            base_url = "http://" + base_url
        self._ssl = _security.resolve_tls(
            tls, secure_scheme=base_url.startswith("https://"), http2=False
        )
        if self._ssl is not None and base_url.startswith("http://"):
            base_url = "https://" + base_url.removeprefix("http://")
        self.base_url = base_url.rstrip("/")
        self.request_timeout = request_timeout
        self._headers = {**_JSON_HEADERS, **_security.auth_headers(_security.resolve_token(token))}
        self._session = session
        self._owns_session = session is None

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(enable_cleanup_closed=_ABORT_CLOSED_TLS)
            )
            self._owns_session = True
        return self._session

    async def _request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        time_limit: float | None = None,
    ) -> Any:
        """Send one request; return the decoded JSON body (``None`` for an empty body)."""
        data = None if body is None else json.dumps(body, allow_nan=False)
        client_timeout = aiohttp.ClientTimeout(total=time_limit or self.request_timeout)
        try:
            async with self._get_session().request(
                method,
                self.base_url + path,
                data=data,
                params=params,
                headers=self._headers,
                timeout=client_timeout,
                ssl=self._ssl if self._ssl is not None else True,
            ) as response:
                text = await response.text()
                if response.status >= 400:
                    raise _api_error(response.status, text, operation)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _errors.TransportError(
                f"{operation}: {type(exc).__name__}: {exc}", operation=operation
            ) from exc
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise _errors.ApiError(
                f"response is not JSON: {text[:200]!r}",
                status=response.status,
                operation=operation,
            ) from exc

    # --- JobClient -----------------------------------------------------------------------

    async def poll(
        self, *, worker_id: str, job_types: Sequence[str], max_jobs: int, wait: float
    ) -> list[_base.Job]:
        body: dict[str, Any] = {
            "workerId": worker_id,
            "jobTypes": list(job_types),
            "maxJobs": max_jobs,
        }
        if wait > 0:
            body["waitMs"] = round(wait * 1000)
        answer = await self._request(
            "POST",
            "/v1/jobs/poll",
            operation="poll",
            body=body,
            time_limit=self.request_timeout + max(wait, 0.0),
        )
        jobs = (answer or {}).get("jobs") or []
        return [_convert.job_from_json(job) for job in jobs]

    async def complete(
        self, job_id: str, *, worker_id: str, variables: Mapping[str, Any] | None
    ) -> None:
        await self._request(
            "POST",
            f"/v1/jobs/{_seg(job_id)}/complete",
            operation="complete",
            body={"workerId": worker_id, "variables": dict(variables or {})},
        )

    async def complete_many(
        self, *, worker_id: str, completions: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[Exception | None]:
        """``POST /v1/jobs/batch-complete``. An engine without that endpoint answers 404,
        raised as :class:`~rochallor_sdk.NotFound` for the whole call."""
        _base.check_complete_many(completions)
        if not completions:
            return []
        body = {
            "workerId": worker_id,
            "completions": [
                {"jobId": job_id, "variables": dict(variables)} for job_id, variables in completions
            ],
        }
        answer = await self._request(
            "POST", "/v1/jobs/batch-complete", operation="complete_many", body=body
        )
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list) or len(results) != len(completions):
            count = len(results) if isinstance(results, list) else "no"
            raise _errors.ApiError(
                f"batch-complete answer has {count} results for {len(completions)} completions",
                status=200,
                operation="complete_many",
            )
        return [
            _batch_result(job_id, result)
            for (job_id, _), result in zip(completions, results, strict=True)
        ]

    async def fail(
        self, job_id: str, *, worker_id: str, error_message: str, retryable: bool
    ) -> None:
        await self._request(
            "POST",
            f"/v1/jobs/{_seg(job_id)}/fail",
            operation="fail",
            body={"workerId": worker_id, "errorMessage": error_message, "retryable": retryable},
        )

    async def extend_lease(self, job_id: str, worker_id: str) -> datetime.datetime:
        try:
            answer = await self._request(
                "POST",
                f"/v1/jobs/{_seg(job_id)}/extend",
                operation="extend",
                body={"workerId": worker_id},
            )
        except (_errors.Conflict, _errors.NotFound) as exc:
            raise _errors.LeaseLost(job_id, f"lease lost on job {job_id}: {exc.reason}") from exc
        expires = _convert.parse_timestamp((answer or {}).get("lockExpiresAt"))
        if expires is None:
            raise _errors.ApiError(
                "extend answer has no lockExpiresAt", status=200, operation="extend"
            )
        return expires

    # --- AdminClient ---------------------------------------------------------------------

    async def upload_definition(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self._request(
            "POST", "/v1/definitions", operation="upload_definition", body=dict(definition)
        )
        return result

    async def get_definition(
        self, definition_id: str, version: int | None = None
    ) -> dict[str, Any]:
        path = f"/v1/definitions/{_seg(definition_id)}"
        if version is not None:
            path += f"/versions/{int(version)}"
        result: dict[str, Any] = await self._request("GET", path, operation="get_definition")
        return result

    async def list_definitions(
        self, *, keyword: str | None = None, page: int = 0, page_size: int = 20
    ) -> dict[str, Any]:
        params = {"page": str(page), "pageSize": str(page_size)}
        if keyword:
            params["keyword"] = keyword
        return _page(
            await self._request(
                "GET", "/v1/definitions", operation="list_definitions", params=params
            )
        )

    async def start_instance(
        self,
        definition_id: str,
        variables: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        business_key: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"definitionId": definition_id, "variables": dict(variables or {})}
        if version is not None:
            body["definitionVersion"] = version
        if business_key:
            body["businessKey"] = business_key
        result: dict[str, Any] = await self._request(
            "POST", "/v1/instances", operation="start_instance", body=body
        )
        return result

    async def start_instances(
        self, starts: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any] | Exception]:
        """``POST /v1/instances/batch``: up to 100 starts in one request. Each item is the
        body of a single start (``definitionId``, ``variables``, ``definitionVersion``,
        ``businessKey``); each result, in order, is the started instance or the error
        :meth:`start_instance` would have raised for it. An engine without the endpoint
        answers 404, raised as :class:`~rochallor_sdk.NotFound` for the whole call."""
        if not starts:
            return []
        answer = await self._request(
            "POST",
            "/v1/instances/batch",
            operation="start_instances",
            body={"instances": [dict(item) for item in starts]},
        )
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list) or len(results) != len(starts):
            count = len(results) if isinstance(results, list) else "no"
            raise _errors.ApiError(
                f"batch start answer has {count} results for {len(starts)} instances",
                status=200,
                operation="start_instances",
            )
        return [_start_result(result) for result in results]

    async def get_instance(self, instance_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._request(
            "GET", f"/v1/instances/{_seg(instance_id)}", operation="get_instance"
        )
        return result

    async def list_instances(
        self,
        *,
        definition_id: str | None = None,
        status: str | None = None,
        business_key: str | None = None,
        page: int = 0,
        page_size: int = 20,
    ) -> dict[str, Any]:
        filters = {
            "definitionId": definition_id,
            "status": status,
            "businessKey": business_key,
        }
        params = {"page": str(page), "pageSize": str(page_size)}
        params.update({key: value for key, value in filters.items() if value})
        return _page(
            await self._request("GET", "/v1/instances", operation="list_instances", params=params)
        )

    async def cancel_instance(self, instance_id: str, reason: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self._request(
            "POST",
            f"/v1/instances/{_seg(instance_id)}/cancel",
            operation="cancel_instance",
            body={} if reason is None else {"reason": reason},
        )
        return result

    async def get_history(self, instance_id: str) -> list[dict[str, Any]]:
        answer = await self._request(
            "GET", f"/v1/instances/{_seg(instance_id)}/history", operation="get_history"
        )
        return list((answer or {}).get("items") or [])

    async def complete_user_task(
        self,
        instance_id: str,
        step_id: str,
        variables: Mapping[str, Any] | None = None,
        *,
        worker_id: str | None = None,
    ) -> None:
        body: dict[str, Any] = {"variables": dict(variables or {})}
        if worker_id:
            body["workerId"] = worker_id
        await self._request(
            "POST",
            f"/v1/instances/{_seg(instance_id)}/user-tasks/{_seg(step_id)}/complete",
            operation="complete_user_task",
            body=body,
        )

    async def signal(
        self, instance_id: str, wait_step_id: str, variables: Mapping[str, Any] | None = None
    ) -> None:
        await self._request(
            "POST",
            f"/v1/instances/{_seg(instance_id)}/signals/{_seg(wait_step_id)}",
            operation="signal",
            body=dict(variables or {}),
        )


def _seg(value: str) -> str:
    """Percent-encode one path segment (definition ids may contain ``:``)."""
    return quote(value, safe="")


def _page(answer: Any) -> dict[str, Any]:
    answer = answer or {}
    return {"items": list(answer.get("items") or []), "total": int(answer.get("total") or 0)}


def _batch_result(job_id: str, result: Any) -> Exception | None:
    """One entry of a batch-complete answer → ``None`` or the error ``complete`` would raise."""
    status = result.get("status") if isinstance(result, dict) else None
    if (
        not isinstance(result, dict)
        or result.get("jobId") != job_id
        or not isinstance(status, int)
        or isinstance(status, bool)
    ):
        return _errors.ApiError(
            f"batch-complete answer has no valid result for job {job_id}: {result!r}"[:300],
            status=200,
            operation="complete",
        )
    if 200 <= status < 300:
        return None
    code = result.get("error")
    return _error_for(
        status,
        code if isinstance(code, str) else None,
        str(result.get("reason") or result.get("message") or ""),
        "complete",
    )


def _start_result(result: Any) -> dict[str, Any] | Exception:
    """One entry of a batch start answer → the instance or the error of a single start."""
    status = result.get("status") if isinstance(result, dict) else None
    if not isinstance(result, dict) or not isinstance(status, int) or isinstance(status, bool):
        return _errors.ApiError(
            f"batch start answer has no valid result: {result!r}"[:300],
            status=200,
            operation="start_instance",
        )
    if status == 201 and isinstance(result.get("instance"), dict):
        instance: dict[str, Any] = result["instance"]
        return instance
    code = result.get("error") if isinstance(result.get("error"), str) else None
    return _error_for(status, code, str(result.get("reason") or ""), "start_instance")


def _api_error(status: int, text: str, operation: str) -> _errors.ApiError:
    code: str | None = None
    reason = text.strip()
    details: list[dict[str, Any]] = []
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = body.get("error") if isinstance(body.get("error"), str) else None
        reason = str(body.get("reason") or body.get("message") or reason)
        raw_details = body.get("details")
        if isinstance(raw_details, list):
            details = [item for item in raw_details if isinstance(item, dict)]
    return _error_for(status, code, reason, operation, details)


def _error_for(
    status: int,
    code: str | None,
    reason: str,
    operation: str,
    details: list[dict[str, Any]] | None = None,
) -> _errors.ApiError:
    cls: type[_errors.ApiError] = _errors.ApiError
    if status == 404:
        cls = _errors.NotFound
    elif status == 409:
        cls = _errors.Conflict
    return cls(reason, status=status, code=code, operation=operation, details=details)
