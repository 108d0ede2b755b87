"""``rochallor-modeller``: the UI and the validation endpoint, without an engine."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from rochallor_server.app import make_offline_app


@pytest.fixture
async def offline() -> AsyncIterator[TestClient[Any, Any]]:
    client: TestClient[Any, Any] = TestClient(TestServer(make_offline_app()))
    await client.start_server()
    yield client
    await client.close()


async def test_root_leads_to_the_ui(offline: TestClient[Any, Any]) -> None:
    response = await offline.get("/", allow_redirects=False)

    assert response.status == 302
    assert response.headers["Location"] == "/ui/"
    page = await offline.get("/ui/")
    assert page.status == 200
    assert '<div id="root">' in await page.text()


async def test_validation_answers_the_validator_s_report(offline: TestClient[Any, Any]) -> None:
    document = {
        "id": "A",
        "name": "A",
        "steps": [{"id": "t", "name": "T", "type": "SERVICE_TASK", "nextStep": "e"}],
    }

    response = await offline.post("/v1/definitions/validate", data=json.dumps(document))

    body = await response.json()
    assert response.status == 200
    assert body["accepted"] is False
    assert {e["code"] for e in body["errors"]} >= {"SERVICE_TASK_JOB_TYPE", "REF_RESOLVES"}


async def test_there_is_no_definition_store(offline: TestClient[Any, Any]) -> None:
    assert (await offline.get("/v1/definitions")).status == 404
    assert (await offline.post("/v1/definitions", data=b"{}")).status == 404
    assert (await offline.get("/healthz")).status == 200
