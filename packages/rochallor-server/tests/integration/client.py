"""A small REST client and in-test worker for the integration tests (plain HTTP, no SDK)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None] | dict[str, Any] | None]
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


class HandlerFailure(Exception):
    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    @classmethod
    @asynccontextmanager
    async def connect(cls, base: str) -> AsyncIterator[Api]:
        async with aiohttp.ClientSession() as session:
            yield cls(session, base)

    async def call(
        self, method: str, path: str, body: Any = None, *, raw: bytes | None = None, **kw: Any
    ) -> tuple[int, Any]:
        data = raw
        headers = kw.pop("headers", {})
        # Like every Rochallor SDK: JSON is declared on every request, with or without a body.
        headers.setdefault("Content-Type", "application/json")
        if body is not None:
            import json

            data = json.dumps(body).encode()
        async with self.session.request(
            method, self.base + path, data=data, headers=headers, **kw
        ) as response:
            text = await response.read()
            if response.content_type == "application/json" and text:
                return response.status, await response.json()
            return response.status, text.decode()

    async def ok(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        status, payload = await self.call(method, path, body)
        assert status == expect, f"{method} {path}: {status} {payload}"
        return payload

    async def upload(self, document: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.ok("POST", "/v1/definitions", document, 201)
        return result

    async def start(
        self,
        definition_id: str,
        variables: dict[str, Any] | None = None,
        business_key: str | None = None,
        version: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"definitionId": definition_id}
        if variables is not None:
            body["variables"] = variables
        if business_key is not None:
            body["businessKey"] = business_key
        if version is not None:
            body["definitionVersion"] = version
        result: dict[str, Any] = await self.ok("POST", "/v1/instances", body, 201)
        return result

    async def instance(self, instance_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.ok("GET", f"/v1/instances/{instance_id}")
        return result

    async def history(self, instance_id: str) -> list[dict[str, Any]]:
        result = await self.ok("GET", f"/v1/instances/{instance_id}/history")
        items: list[dict[str, Any]] = result["items"]
        return items

    async def poll(
        self, job_types: list[str], *, worker: str = "w1", max_jobs: int = 10, wait_ms: int = 0
    ) -> list[dict[str, Any]]:
        body = {"workerId": worker, "jobTypes": job_types, "maxJobs": max_jobs, "waitMs": wait_ms}
        result = await self.ok("POST", "/v1/jobs/poll", body)
        jobs: list[dict[str, Any]] = result["jobs"]
        return jobs

    async def complete(
        self, job_id: str, variables: dict[str, Any] | None = None, worker: str = "w1"
    ) -> int:
        status, _ = await self.call(
            "POST", f"/v1/jobs/{job_id}/complete", {"workerId": worker, "variables": variables}
        )
        return status

    async def fail(self, job_id: str, message: str, *, retryable: bool, worker: str = "w1") -> int:
        body = {"workerId": worker, "errorMessage": message, "retryable": retryable}
        status, _ = await self.call("POST", f"/v1/jobs/{job_id}/fail", body)
        return status

    async def wait_until(
        self,
        instance_id: str,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 15.0,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            inst = await self.instance(instance_id)
            if predicate(inst):
                return inst
            assert time.monotonic() < deadline, f"timed out; last state {inst}"
            await asyncio.sleep(0.05)

    async def wait_for_instances(
        self, definition_id: str, count: int, timeout: float = 15.0
    ) -> list[dict[str, Any]]:
        """Instances of a definition, once there are ``count`` (chaining starts them after
        the parent's transaction commits)."""
        deadline = time.monotonic() + timeout
        while True:
            page = await self.ok("GET", f"/v1/instances?definitionId={definition_id}")
            items: list[dict[str, Any]] = page["items"]
            if len(items) >= count:
                assert page["total"] == len(items) == count, page
                return items
            assert time.monotonic() < deadline, f"timed out waiting for {definition_id}: {page}"
            await asyncio.sleep(0.05)

    async def wait_terminal(self, instance_id: str, timeout: float = 15.0) -> dict[str, Any]:
        return await self.wait_until(instance_id, lambda i: i["status"] in TERMINAL, timeout)

    async def work(
        self,
        handlers: dict[str, Handler],
        instance_id: str,
        *,
        timeout: float = 15.0,
        worker: str = "w1",
    ) -> dict[str, Any]:
        """Act as a worker for ``handlers`` until the instance is terminal."""
        deadline = time.monotonic() + timeout
        while True:
            for job in await self.poll(list(handlers), worker=worker, wait_ms=100):
                try:
                    result = handlers[job["jobType"]](job)
                    if asyncio.iscoroutine(result):
                        result = await result
                except HandlerFailure as exc:
                    await self.fail(job["id"], str(exc), retryable=exc.retryable, worker=worker)
                else:
                    await self.complete(job["id"], result, worker=worker)  # type: ignore[arg-type]
            inst = await self.instance(instance_id)
            if inst["status"] in TERMINAL:
                return inst
            assert time.monotonic() < deadline, f"timed out; last state {inst}"
