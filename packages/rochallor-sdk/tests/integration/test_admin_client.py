"""The admin client (``AdminClient``) against the real engine, over REST and gRPC."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from rochallor_sdk import Conflict, NotFound

from ._engine import EngineProcess
from ._support import TRANSPORTS, admin, completed_steps, wait_for_status

ADMIN_FLOW: dict[str, Any] = {
    "id": "SDK::admin-flow",
    "name": "Admin flow",
    "description": "A user task, then a wait for a signal.",
    "steps": [
        {"id": "review", "name": "Review", "type": "USER_TASK", "nextStep": "await-payment"},
        {"id": "await-payment", "name": "Await payment", "type": "WAIT", "nextStep": "end"},
        {"id": "end", "name": "End", "type": "END"},
    ],
}
UNKNOWN_INSTANCE = "01JAAAAAAAAAAAAAAAAAAAAAAA"


def _same_instants(value: Any) -> Any:
    """Timestamps (keys ending in ``At``) as datetimes: both transports give RFC 3339, but
    not always the same digits (``.745540Z`` over gRPC, ``.74554Z`` over REST)."""
    if isinstance(value, list):
        return [_same_instants(item) for item in value]
    if isinstance(value, dict):
        return {
            key: datetime.datetime.fromisoformat(item)
            if key.endswith("At") and isinstance(item, str)
            else _same_instants(item)
            for key, item in value.items()
        }
    return value


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_admin_client_round_trip(engine: EngineProcess, transport: str) -> None:
    async with admin(engine.url(transport), transport) as client:
        # Definitions: a ':' in the id travels in paths and messages unharmed.
        summary = await client.upload_definition(ADMIN_FLOW)
        assert (summary["id"], summary["version"], summary["name"]) == (
            "SDK::admin-flow",
            1,
            "Admin flow",
        )
        assert type(summary["version"]) is int
        page = await client.list_definitions(keyword="admin-flow")
        assert page["total"] == 1
        assert [(d["id"], d["version"]) for d in page["items"]] == [("SDK::admin-flow", 1)]
        assert (await client.list_definitions(keyword="no-such-flow")) == {"items": [], "total": 0}
        for version in (None, 1):
            stored = await client.get_definition("SDK::admin-flow", version)
            assert stored == {**ADMIN_FLOW, "version": 1}
        with pytest.raises(NotFound):
            await client.get_definition("SDK::no-such-flow")

        # An instance through a user task and a signal.
        instance = await client.start_instance(
            "SDK::admin-flow", {"orderId": "o-7", "amountCents": 12000}, business_key="o-7"
        )
        assert instance["status"] == "WAITING", instance
        assert instance["currentStepIds"] == ["review"]
        assert instance["businessKey"] == "o-7"
        assert (await client.get_instance(instance["id"]))["status"] == "WAITING"
        listed = await client.list_instances(definition_id="SDK::admin-flow", business_key="o-7")
        assert [(i["id"], i["status"]) for i in listed["items"]] == [(instance["id"], "WAITING")]
        assert listed["total"] == 1

        await client.complete_user_task(
            instance["id"], "review", {"approved": True, "reviewer": "alice"}, worker_id="alice"
        )
        parked = await client.get_instance(instance["id"])
        assert (parked["status"], parked["currentStepIds"]) == ("WAITING", ["await-payment"])
        with pytest.raises(NotFound):  # not idempotent: the task is no longer open
            await client.complete_user_task(instance["id"], "review")

        await client.signal(instance["id"], "await-payment", {"paidCents": 12000})
        done = await wait_for_status(client, instance["id"])
        assert done["status"] == "COMPLETED", done
        assert done["variables"] == {
            "orderId": "o-7",
            "amountCents": 12000,
            "approved": True,
            "reviewer": "alice",
            "paidCents": 12000,
        }
        assert type(done["variables"]["paidCents"]) is int
        assert done.get("completedAt")
        history = await client.get_history(instance["id"])
        assert completed_steps(history) == ["review", "await-payment", "end"]
        assert all(type(h["attemptNumber"]) is int for h in history)
        with pytest.raises(Conflict):  # the wait is over
            await client.signal(instance["id"], "await-payment")

        # Cancel, twice.
        other = await client.start_instance("SDK::admin-flow", business_key="o-8")
        cancelled = await client.cancel_instance(other["id"], reason="customer changed their mind")
        assert cancelled["status"] == "CANCELLED", cancelled
        assert cancelled["failureReason"] == "customer changed their mind"
        with pytest.raises(Conflict):
            await client.cancel_instance(other["id"], reason="again")
        assert (await client.get_instance(other["id"]))["status"] == "CANCELLED"
        by_status = await client.list_instances(status="CANCELLED")
        assert [i["id"] for i in by_status["items"]] == [other["id"]]
        everything = await client.list_instances(definition_id="SDK::admin-flow")
        assert everything["total"] == 2

        # Same dicts as the REST resources, whatever the transport.
        async with admin(engine.rest_url, "rest") as rest:
            for instance_id in (instance["id"], other["id"]):
                assert _same_instants(await client.get_instance(instance_id)) == _same_instants(
                    await rest.get_instance(instance_id)
                )
                assert _same_instants(await client.get_history(instance_id)) == _same_instants(
                    await rest.get_history(instance_id)
                )
            listing = await client.list_instances(definition_id="SDK::admin-flow")
            assert _same_instants(listing) == _same_instants(
                await rest.list_instances(definition_id="SDK::admin-flow")
            )
            assert await client.get_definition("SDK::admin-flow") == await rest.get_definition(
                "SDK::admin-flow"
            )

        with pytest.raises(NotFound):
            await client.get_instance(UNKNOWN_INSTANCE)
        with pytest.raises(NotFound):
            await client.cancel_instance(UNKNOWN_INSTANCE)
        with pytest.raises(NotFound):
            await client.signal(UNKNOWN_INSTANCE, "await-payment")
        assert await client.get_history(UNKNOWN_INSTANCE) == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_start_instances_answers_each_start(engine: EngineProcess, transport: str) -> None:
    async with admin(engine.url(transport), transport) as client:
        await client.upload_definition({**ADMIN_FLOW, "id": f"SDK::batch-{transport}"})
        flow = f"SDK::batch-{transport}"
        results = await client.start_instances(
            [
                {"definitionId": flow, "variables": {"n": 1}, "businessKey": "b-1"},
                {"definitionId": "SDK::no-such-flow"},
                {"definitionId": flow, "variables": {"n": 2}},
            ]
        )
        first, missing, second = results
        assert isinstance(first, dict) and isinstance(second, dict)
        assert (first["variables"], first["businessKey"]) == ({"n": 1}, "b-1")
        assert second["variables"] == {"n": 2}
        assert first["id"] != second["id"]
        assert isinstance(missing, NotFound)
        for started in (first, second):
            stored = await client.get_instance(started["id"])
            assert stored["definitionId"] == flow
        assert await client.start_instances([]) == []
