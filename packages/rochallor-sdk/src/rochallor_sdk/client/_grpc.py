"""gRPC transport (grpclib + betterproto2 messages), same behaviour as the REST client."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError

from rochallor_sdk import _errors, _security
from rochallor_sdk._gen.workflow import v1 as pb
from rochallor_sdk.client import _base, _convert

T = TypeVar("T")

_DEFAULT_PORT = 9090


def parse_target(target: str) -> tuple[str, int]:
    """``host:port``, ``grpc[s]://host:port`` or ``http[s]://host:port`` → (host, port)."""
    split = urlsplit(target if "://" in target else f"grpc://{target}")
    return split.hostname or "localhost", split.port or _DEFAULT_PORT


def _transport_of(channel: Channel) -> Any:
    """The channel's transport, if connected (grpclib keeps it on a private attribute)."""
    protocol = getattr(channel, "_protocol", None)
    return getattr(getattr(protocol, "connection", None), "_transport", None)


async def _close_channel(channel: Channel, within: float = 1.0) -> None:
    """Close ``channel`` and wait (bounded) until its socket is closed.

    A TLS connection closes after its close_notify exchange, a few loop iterations after
    ``Channel.close()``; an engine that does not answer within ``within`` seconds gets the
    connection aborted, so no socket outlives the client.
    """
    transport = _transport_of(channel)
    sock = None if transport is None else transport.get_extra_info("socket")
    channel.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while sock is not None and sock.fileno() != -1:
        if loop.time() > deadline:
            transport.abort()
            await asyncio.sleep(0)  # the loop closes the socket on its next turn
            return
        await asyncio.sleep(0.005)


def _secure_scheme(target: str) -> bool:
    return target.startswith(("grpcs://", "https://"))


class GrpcClient(_base.ClosingClient):
    """Talks to the engine's gRPC service ``workflow.v1.WorkflowEngine``; implements
    ``JobClient`` and ``AdminClient`` with the same dict shapes as :class:`RestClient`.

    ``token``, when given, is sent on every call as ``authorization: Bearer <token>`` metadata.
    """

    def __init__(
        self,
        target: str,
        *,
        channel: Channel | None = None,
        request_timeout: float = 10.0,
        token: str | None = None,
        tls: ssl.SSLContext | bool | None = None,
    ) -> None:
        """``token``: API key or JWT (default ``ROCHALLOR_TOKEN``), sent as ``authorization``
        metadata. ``tls``: an SSL context, ``True``, or ``None`` (TLS for ``grpcs://``
        targets, from ``ROCHALLOR_TLS_*``)."""
        self.host, self.port = parse_target(target)
        self.request_timeout = request_timeout
        self._ssl = _security.resolve_tls(tls, secure_scheme=_secure_scheme(target), http2=True)
        token = _security.resolve_token(token)
        self._metadata = None if token is None else {"authorization": f"Bearer {token}"}
        self._channel = channel
        self._owns_channel = channel is None

    async def close(self) -> None:
        if self._owns_channel and self._channel is not None:
            await _close_channel(self._channel)
        self._channel = None

    def _stub(self) -> pb.WorkflowEngineStub:
        if self._channel is None:
            self._channel = Channel(self.host, self.port, ssl=self._ssl)
            self._owns_channel = True
        return pb.WorkflowEngineStub(self._channel)

    async def _call(
        self,
        operation: str,
        rpc: Callable[..., Awaitable[T]],
        message: Any,
        *,
        time_limit: float | None = None,
    ) -> T:
        try:
            return await rpc(
                message, timeout=time_limit or self.request_timeout, metadata=self._metadata
            )
        except GRPCError as exc:
            cls: type[_errors.ApiError] = _errors.ApiError
            if exc.status is Status.NOT_FOUND:
                cls = _errors.NotFound
            elif exc.status is Status.FAILED_PRECONDITION:
                cls = _errors.Conflict
            elif exc.status in (Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED):
                raise _errors.TransportError(
                    f"{operation}: {exc.status.name}: {exc.message or ''}", operation=operation
                ) from exc
            raise cls(exc.message or "", status=exc.status.name, operation=operation) from exc
        except (OSError, TimeoutError, StreamTerminatedError, ProtocolError) as exc:
            raise _errors.TransportError(
                f"{operation}: {type(exc).__name__}: {exc}", operation=operation
            ) from exc

    # --- JobClient -----------------------------------------------------------------------

    async def poll(
        self, *, worker_id: str, job_types: Sequence[str], max_jobs: int, wait: float
    ) -> list[_base.Job]:
        request = pb.PollJobsRequest(
            worker_id=worker_id,
            job_types=list(job_types),
            max_jobs=max_jobs,
            wait_ms=max(round(wait * 1000), 0),
        )
        response = await self._call(
            "poll",
            self._stub().poll_jobs,
            request,
            time_limit=self.request_timeout + max(wait, 0.0),
        )
        return [_convert.job_from_proto(job) for job in response.jobs]

    async def complete(
        self, job_id: str, *, worker_id: str, variables: Mapping[str, Any] | None
    ) -> None:
        request = pb.CompleteJobRequest(
            job_id=job_id,
            worker_id=worker_id,
            variables_to_set=_convert.dict_to_struct(variables or {}),
        )
        await self._call("complete", self._stub().complete_job, request)

    async def complete_many(
        self, *, worker_id: str, completions: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[Exception | None]:
        """The ``CompleteJob`` calls sent concurrently (there is no batch RPC; HTTP/2
        multiplexes them on the one channel). Never raises for the call as a whole."""
        _base.check_complete_many(completions)

        async def one(job_id: str, variables: Mapping[str, Any]) -> Exception | None:
            try:
                await self.complete(job_id, worker_id=worker_id, variables=variables)
            except (_errors.TransportError, _errors.ApiError) as exc:
                return exc
            return None

        return list(await asyncio.gather(*(one(job_id, v) for job_id, v in completions)))

    async def fail(
        self, job_id: str, *, worker_id: str, error_message: str, retryable: bool
    ) -> None:
        request = pb.FailJobRequest(
            job_id=job_id, worker_id=worker_id, retryable=retryable, error_message=error_message
        )
        await self._call("fail", self._stub().fail_job, request)

    async def extend_lease(self, job_id: str, worker_id: str) -> datetime.datetime:
        request = pb.ExtendJobLeaseRequest(job_id=job_id, worker_id=worker_id)
        try:
            response = await self._call("extend", self._stub().extend_job_lease, request)
        except (_errors.Conflict, _errors.NotFound) as exc:
            raise _errors.LeaseLost(job_id, f"lease lost on job {job_id}: {exc.reason}") from exc
        expires = _convert.aware(response.lock_expires_at)
        if expires is None:
            raise _errors.ApiError(
                "ExtendJobLease answer has no lock_expires_at", status="OK", operation="extend"
            )
        return expires

    # --- AdminClient ---------------------------------------------------------------------

    async def upload_definition(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        try:
            message = _convert.definition_to_proto(definition)
        except (KeyError, ValueError, TypeError) as exc:
            raise _errors.ApiError(
                f"definition cannot be encoded: {exc}", status="CLIENT", operation="upload"
            ) from exc
        response = await self._call(
            "upload_definition",
            self._stub().upload_definition,
            pb.UploadDefinitionRequest(definition=message),
        )
        summary: dict[str, Any] = {
            "id": response.id,
            "version": response.version,
            "name": message.name,
        }
        uploaded_at = _convert.aware(response.uploaded_at)
        if uploaded_at is not None:
            summary["uploadedAt"] = uploaded_at.isoformat()
        return summary

    async def get_definition(
        self, definition_id: str, version: int | None = None
    ) -> dict[str, Any]:
        response = await self._call(
            "get_definition",
            self._stub().get_definition,
            pb.GetDefinitionRequest(id=definition_id, version=version or 0),
        )
        if response.definition is None:
            raise _errors.NotFound("definition not found", status="NOT_FOUND")
        return _convert.definition_to_json(response.definition)

    async def list_definitions(
        self, *, keyword: str | None = None, page: int = 0, page_size: int = 20
    ) -> dict[str, Any]:
        response = await self._call(
            "list_definitions",
            self._stub().list_definitions,
            pb.ListDefinitionsRequest(keyword=keyword or "", page=page, page_size=page_size),
        )
        items = [{"id": d.id, "version": d.version, "name": d.name} for d in response.definitions]
        return {"items": items, "total": response.total}

    async def start_instance(
        self,
        definition_id: str,
        variables: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        business_key: str | None = None,
    ) -> dict[str, Any]:
        request = pb.StartInstanceRequest(
            definition_id=definition_id,
            definition_version=version or 0,
            variables=_convert.dict_to_struct(variables or {}),
            business_key=business_key or "",
        )
        response = await self._call("start_instance", self._stub().start_instance, request)
        return _convert.instance_to_json(response.instance)

    async def start_instances(
        self, starts: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any] | Exception]:
        """Each item is the REST body of a single start; gRPC has no batch start, so the
        starts go as concurrent ``StartInstance`` calls (the engine still writes starts that
        arrive together with one statement). Results as :meth:`RestClient.start_instances`."""

        async def one(item: Mapping[str, Any]) -> dict[str, Any] | Exception:
            try:
                return await self.start_instance(
                    str(item.get("definitionId") or ""),
                    item.get("variables"),
                    version=item.get("definitionVersion"),
                    business_key=item.get("businessKey"),
                )
            except _errors.ApiError as exc:
                return exc

        return list(await asyncio.gather(*(one(item) for item in starts)))

    async def get_instance(self, instance_id: str) -> dict[str, Any]:
        response = await self._call(
            "get_instance", self._stub().get_instance, pb.GetInstanceRequest(id=instance_id)
        )
        return _convert.instance_to_json(response.instance)

    async def list_instances(
        self,
        *,
        definition_id: str | None = None,
        status: str | None = None,
        business_key: str | None = None,
        page: int = 0,
        page_size: int = 20,
    ) -> dict[str, Any]:
        request = pb.ListInstancesRequest(
            definition_id=definition_id or "",
            status=_convert.instance_status_to_proto(status),
            business_key=business_key or "",
            page=page,
            page_size=page_size,
        )
        response = await self._call("list_instances", self._stub().list_instances, request)
        return {
            "items": [_convert.instance_to_json(i) for i in response.instances],
            "total": response.total,
        }

    async def cancel_instance(self, instance_id: str, reason: str | None = None) -> dict[str, Any]:
        response = await self._call(
            "cancel_instance",
            self._stub().cancel_instance,
            pb.CancelInstanceRequest(id=instance_id, reason=reason or ""),
        )
        return _convert.instance_to_json(response.instance)

    async def get_history(self, instance_id: str) -> list[dict[str, Any]]:
        response = await self._call(
            "get_history",
            self._stub().get_instance_history,
            pb.GetInstanceHistoryRequest(id=instance_id),
        )
        return [_convert.execution_to_json(e) for e in response.executions]

    async def complete_user_task(
        self,
        instance_id: str,
        step_id: str,
        variables: Mapping[str, Any] | None = None,
        *,
        worker_id: str | None = None,
    ) -> None:
        request = pb.CompleteUserTaskRequest(
            instance_id=instance_id,
            user_task_step_id=step_id,
            result=_convert.dict_to_struct(variables or {}),
            completed_by=worker_id or "",
        )
        await self._call("complete_user_task", self._stub().complete_user_task, request)

    async def signal(
        self, instance_id: str, wait_step_id: str, variables: Mapping[str, Any] | None = None
    ) -> None:
        request = pb.SignalWaitRequest(
            instance_id=instance_id,
            wait_step_id=wait_step_id,
            variables=_convert.dict_to_struct(variables or {}),
        )
        await self._call("signal", self._stub().signal_wait, request)
