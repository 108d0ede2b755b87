"""The reference e2e scenarios, driven over plain HTTP against a real engine and PostgreSQL."""

from __future__ import annotations

from typing import Any

from ..support import fixture_definition
from .client import Api, HandlerFailure


def wf(wid: str, *steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"id": wid, "name": wid, "steps": list(steps), **top}


def task(sid: str, job_type: str, nxt: str | None = None, **extra: Any) -> dict[str, Any]:
    step: dict[str, Any] = {"id": sid, "name": sid, "type": "SERVICE_TASK", "jobType": job_type}
    if nxt:
        step["nextStep"] = nxt
    step.update(extra)
    return step


END = {"id": "end", "name": "End", "type": "END"}


def completed_steps(history: list[dict[str, Any]]) -> list[str]:
    return [h["stepId"] for h in history if h["status"] == "COMPLETED"]


async def test_order_fulfilment_runs_to_completed_and_history_lists_every_step(
    api: Api, order_fulfilment: dict[str, Any]
) -> None:
    await api.upload(order_fulfilment)
    inst = await api.start("SHOP::order-fulfilment", {"orderId": "o-1"})
    assert inst["status"] == "ACTIVE"
    assert inst["currentStepIds"] == ["reserve-stock"]
    handlers = {
        "reserve-stock": lambda job: {"reserved": True},
        "charge-payment": lambda job: {"paymentStatus": "CAPTURED"},
        "dispatch-order": lambda job: {"trackingId": "T-1"},
    }
    final = await api.work(handlers, inst["id"])
    assert final["status"] == "COMPLETED"
    assert final["currentStepIds"] == []
    assert final["variables"] == {
        "orderId": "o-1",
        "reserved": True,
        "paymentStatus": "CAPTURED",
        "trackingId": "T-1",
    }
    history = await api.history(inst["id"])
    assert [h["stepId"] for h in history] == [
        "reserve-stock",
        "charge-payment",
        "payment-status",
        "dispatch-order",
        "end",
    ]
    assert all(h["status"] == "COMPLETED" for h in history)
    assert set(history[0]) == {
        "id",
        "instanceId",
        "stepId",
        "stepType",
        "attemptNumber",
        "status",
        "startedAt",
        "endedAt",
        "failureReason",
    }


async def test_linear(api: Api) -> None:
    await api.upload(wf("e2e-linear", task("a", "lin-a", "b"), task("b", "lin-b", "end"), END))
    inst = await api.start("e2e-linear", {"amount": 100})
    seen: list[dict[str, Any]] = []

    def handle(job: dict[str, Any]) -> dict[str, Any]:
        seen.append(job)
        return {job["stepId"]: "done"}

    final = await api.work({"lin-a": handle, "lin-b": handle}, inst["id"])
    assert final["status"] == "COMPLETED"
    assert completed_steps(await api.history(inst["id"])) == ["a", "b", "end"]
    first = seen[0]
    assert first["variables"] == {"amount": 100}
    assert first["retriesRemaining"] == 0
    assert first["stepId"] == "a"
    assert first["status"] == "LOCKED"
    assert first["lockExpiresAt"].endswith("Z") or "+" in first["lockExpiresAt"]
    assert seen[1]["variables"] == {"amount": 100, "a": "done"}


DECIDE = wf(
    "e2e-decision",
    task("score", "dec-score", "route"),
    {
        "id": "route",
        "name": "Route",
        "type": "DECISION",
        "conditionalNextSteps": {"result == 'approved'": "approved", "result == 'x'": "end"},
    },
    task("approved", "dec-approved", "end"),
    END,
)


async def test_decision(api: Api) -> None:
    await api.upload(DECIDE)
    inst = await api.start("e2e-decision")
    final = await api.work(
        {"dec-score": lambda j: {"result": "approved"}, "dec-approved": lambda j: None},
        inst["id"],
    )
    assert final["status"] == "COMPLETED"
    assert "approved" in completed_steps(await api.history(inst["id"]))


async def test_decision_no_match(api: Api) -> None:
    await api.upload(DECIDE)
    inst = await api.start("e2e-decision")
    final = await api.work({"dec-score": lambda j: {"result": "nope"}}, inst["id"])
    assert final["status"] == "FAILED"
    assert "DecisionNoBranchMatched" in final["failureReason"]
    assert "completedAt" in final


PARALLEL = wf(
    "e2e-parallel",
    {
        "id": "fork",
        "name": "Fork",
        "type": "PARALLEL_GATEWAY",
        "parallelNextSteps": ["left", "right"],
        "joinStep": "join",
    },
    task("left", "par-left", "left2"),
    task("left2", "par-left2", "join"),
    task("right", "par-right", "join"),
    {"id": "join", "name": "Join", "type": "JOIN_GATEWAY", "nextStep": "end"},
    END,
)


async def test_parallel_join_waits_for_multi_step_branch(api: Api) -> None:
    await api.upload(PARALLEL)
    inst = await api.start("e2e-parallel")
    assert sorted(inst["currentStepIds"]) == ["left", "right"]
    [left] = await api.poll(["par-left"])
    [right] = await api.poll(["par-right"])
    assert await api.complete(left["id"], {"l": 1}) == 204
    assert await api.complete(right["id"], {"r": 1}) == 204
    mid = await api.instance(inst["id"])
    assert mid["status"] == "ACTIVE"
    assert sorted(mid["currentStepIds"]) == ["join", "left2"]
    [left2] = await api.poll(["par-left2"])
    assert await api.complete(left2["id"]) == 204
    final = await api.instance(inst["id"])
    assert final["status"] == "COMPLETED"
    history = await api.history(inst["id"])
    assert [h["stepId"] for h in history if h["stepId"] == "join"] == ["join"]


async def test_parallel_user_task(api: Api) -> None:
    await api.upload(
        wf(
            "e2e-par-ut",
            {
                "id": "fork",
                "name": "Fork",
                "type": "PARALLEL_GATEWAY",
                "parallelNextSteps": ["svc", "approve"],
                "joinStep": "join",
            },
            task("svc", "put-svc", "join"),
            {"id": "approve", "name": "Approve", "type": "USER_TASK", "nextStep": "join"},
            {"id": "join", "name": "Join", "type": "JOIN_GATEWAY", "nextStep": "end"},
            END,
        )
    )
    inst = await api.start("e2e-par-ut")
    assert inst["status"] == "WAITING"
    assert "approve" in inst["currentStepIds"]
    [job] = await api.poll(["put-svc"])
    assert await api.complete(job["id"]) == 204
    assert (await api.instance(inst["id"]))["status"] == "WAITING"
    status, _ = await api.call(
        "POST",
        f"/v1/instances/{inst['id']}/user-tasks/approve/complete",
        {"variables": {"approved": True}},
    )
    assert status == 204
    final = await api.instance(inst["id"])
    assert final["status"] == "COMPLETED"
    assert final["variables"] == {"approved": True}


async def test_user_task_and_signal_errors(api: Api) -> None:
    await api.upload(
        wf(
            "e2e-ut",
            {"id": "review", "name": "Review", "type": "USER_TASK", "nextStep": "wait"},
            {"id": "wait", "name": "Wait", "type": "WAIT", "nextStep": "end"},
            END,
        )
    )
    inst = await api.start("e2e-ut")
    iid = inst["id"]
    assert inst["status"] == "WAITING"
    assert (await api.call("POST", f"/v1/instances/{iid}/signals/wait", None))[0] == 409
    assert (await api.call("POST", f"/v1/instances/{iid}/signals/review"))[0] == 400
    assert (await api.call("POST", f"/v1/instances/{iid}/signals/nope"))[0] == 409
    assert (await api.call("POST", f"/v1/instances/{iid}/user-tasks/nope/complete"))[0] == 404
    assert (await api.call("POST", f"/v1/instances/{iid}/user-tasks/wait/complete"))[0] == 400
    assert (await api.call("POST", "/v1/instances/unknown/user-tasks/review/complete"))[0] == 404
    assert (await api.call("POST", "/v1/instances/unknown/signals/wait"))[0] == 404
    before = await api.instance(iid)
    status, _ = await api.call(
        "POST", f"/v1/instances/{iid}/user-tasks/review/complete", {"result": {"ok": True}}
    )
    assert status == 204
    again = await api.call("POST", f"/v1/instances/{iid}/user-tasks/review/complete")
    assert again[0] == 404
    parked = await api.instance(iid)
    assert parked["status"] == "WAITING"
    assert parked["currentStepIds"] == ["wait"]
    assert parked["variables"] == {**before["variables"], "ok": True}
    assert (await api.call("POST", f"/v1/instances/{iid}/signals/wait", raw=b"null"))[0] == 204
    done = await api.instance(iid)
    assert done["status"] == "COMPLETED"
    assert (await api.call("POST", f"/v1/instances/{iid}/user-tasks/review/complete"))[0] == 409
    assert (await api.call("POST", f"/v1/instances/{iid}/signals/nope"))[0] == 409


async def test_wait_signal_merges_body(api: Api) -> None:
    await api.upload(
        wf("e2e-wait", {"id": "w", "name": "W", "type": "WAIT", "nextStep": "end"}, END)
    )
    inst = await api.start("e2e-wait", {"a": 1})
    assert inst["status"] == "WAITING"
    assert (await api.call("POST", f"/v1/instances/{inst['id']}/signals/w", {"b": 2}))[0] == 204
    final = await api.instance(inst["id"])
    assert final["status"] == "COMPLETED"
    assert final["variables"] == {"a": 1, "b": 2}


async def test_non_interrupting_timer(api: Api) -> None:
    timer = {"type": "TIMER", "duration": "PT1S", "interrupting": False, "targetStepId": "ping"}
    await api.upload(
        wf(
            "e2e-timer",
            {"id": "w", "name": "W", "type": "WAIT", "nextStep": "end", "boundaryEvents": [timer]},
            task("ping", "timer-ping", "end"),
            END,
        )
    )
    inst = await api.start("e2e-timer")
    final = await api.work({"timer-ping": lambda j: {"pinged": True}}, inst["id"], timeout=20)
    assert final["status"] == "COMPLETED"
    assert final["currentStepIds"] == []
    statuses = {h["stepId"]: h["status"] for h in await api.history(inst["id"])}
    assert statuses["w"] == "SKIPPED"
    assert statuses["ping"] == "COMPLETED"


async def test_interrupting_timer_and_late_completion(api: Api) -> None:
    timer = {"type": "TIMER", "duration": "PT1S", "interrupting": True, "targetStepId": "timeout"}
    await api.upload(
        wf(
            "e2e-timer-int",
            task("slow", "ti-slow", "end", boundaryEvents=[timer]),
            task("timeout", "ti-timeout", "end"),
            END,
        )
    )
    inst = await api.start("e2e-timer-int")
    [slow] = await api.poll(["ti-slow"])
    final = await api.work({"ti-timeout": lambda j: {"timedOut": True}}, inst["id"], timeout=20)
    assert final["status"] == "COMPLETED"
    assert await api.complete(slow["id"], {"late": True}) == 204
    after = await api.instance(inst["id"])
    assert after == final
    statuses = {h["stepId"]: h["status"] for h in await api.history(inst["id"])}
    assert statuses["slow"] == "FAILED"
    assert statuses["timeout"] == "COMPLETED"


async def test_retry_then_success(api: Api) -> None:
    await api.upload(wf("e2e-retry", task("flaky", "flaky", "end", retryCount=2), END))
    inst = await api.start("e2e-retry")
    seen: list[int] = []

    def flaky(job: dict[str, Any]) -> dict[str, Any]:
        seen.append(job["retriesRemaining"])
        if job["retriesRemaining"] == 2:
            raise HandlerFailure("transient")
        return {"ok": True}

    final = await api.work({"flaky": flaky}, inst["id"])
    assert final["status"] == "COMPLETED"
    assert seen == [2, 1]
    history = await api.history(inst["id"])
    assert [(h["stepId"], h["attemptNumber"]) for h in history] == [("flaky", 1), ("end", 1)]


async def test_retry_exhausted(api: Api) -> None:
    await api.upload(wf("e2e-exhaust", task("bad", "always-bad", "end", retryCount=1), END))
    inst = await api.start("e2e-exhaust")
    attempts: list[int] = []

    def bad(job: dict[str, Any]) -> None:
        attempts.append(job["retriesRemaining"])
        raise HandlerFailure("always fails")

    final = await api.work({"always-bad": bad}, inst["id"])
    assert final["status"] == "FAILED"
    assert final["failureReason"] == "always fails"
    assert attempts == [1, 0]


async def test_chaining_business_key_and_variables(api: Api) -> None:
    await api.upload(wf("e2e-chain-b", task("b", "chain-b", "end"), END))
    await api.upload(
        wf(
            "e2e-chain-a",
            task("a", "chain-a", "end"),
            END,
            autoStartNextWorkflow=True,
            nextWorkflowId="e2e-chain-b",
        )
    )
    inst = await api.start("e2e-chain-a", business_key="BK-e2e-001")
    final = await api.work({"chain-a": lambda j: {"applicantId": "A-1", "amount": 5}}, inst["id"])
    assert final["status"] == "COMPLETED"
    assert final["businessKey"] == "BK-e2e-001"
    [child] = await api.wait_for_instances("e2e-chain-b", 1)
    assert child["businessKey"] == "BK-e2e-001"
    assert child["variables"] == {"applicantId": "A-1", "amount": 5}
    assert child["currentStepIds"] == ["b"]


async def test_cancel(api: Api) -> None:
    await api.upload(
        wf("e2e-cancel", {"id": "w", "name": "W", "type": "WAIT", "nextStep": "end"}, END)
    )
    inst = await api.start("e2e-cancel", business_key="BK-c")
    status, body = await api.call(
        "POST", f"/v1/instances/{inst['id']}/cancel", {"reason": "e2e-test-cancel"}
    )
    assert status == 200
    assert body["status"] == "CANCELLED"
    assert body["failureReason"] == "e2e-test-cancel"
    assert body["businessKey"] == "BK-c"
    assert "completedAt" in body
    assert (await api.instance(inst["id"]))["status"] == "CANCELLED"
    again, _ = await api.call("POST", f"/v1/instances/{inst['id']}/cancel", {"reason": "x"})
    assert again == 409
    assert (await api.call("POST", "/v1/instances/nope/cancel"))[0] == 404
    history = await api.history(inst["id"])
    assert [h["status"] for h in history] == ["SKIPPED"]


async def test_transformation(api: Api) -> None:
    await api.upload(
        wf(
            "e2e-transform",
            {
                "id": "calc",
                "name": "Calc",
                "type": "TRANSFORMATION",
                "nextStep": "end",
                "transformations": {"total": "${price * qty}", "label": "fixed"},
            },
            END,
        )
    )
    inst = await api.start("e2e-transform", {"price": 2.5, "qty": 4})
    assert inst["status"] == "COMPLETED"
    assert inst["variables"] == {"price": 2.5, "qty": 4, "total": 10, "label": "fixed"}


async def test_loan_application_and_disbursement(api: Api) -> None:
    await api.upload(fixture_definition("loan-disbursement"))
    await api.upload(fixture_definition("loan-application"))
    inst = await api.start(
        "LOS::loan-application", {"applicantId": "A-9", "amount": 20000}, business_key="L-1"
    )
    handlers = {
        "validate-application": lambda j: {"valid": True},
        "credit-score": lambda j: {"creditScore": 700},
        "fraud-screen": lambda j: {"fraudScore": 0.1},
        "approve-loan": lambda j: {"approved": True},
    }
    final = await api.work(handlers, inst["id"])
    assert final["status"] == "COMPLETED", final
    history = await api.history(inst["id"])
    assert "approve-loan" in completed_steps(history)
    [child] = await api.wait_for_instances("LOS::loan-disbursement", 1)
    assert child["businessKey"] == "L-1"


async def test_decision_table_wait_signal_and_interrupting_timer_on_a_wait(api: Api) -> None:
    await api.upload(fixture_definition("loan-disbursement"))
    inst = await api.start(
        "LOS::loan-disbursement", {"loanAmount": 200000, "expressDisbursement": True}
    )
    [prep] = await api.poll(["prepare-disbursement"])
    assert await api.complete(prep["id"], {"prepared": True}) == 204
    parked = await api.instance(inst["id"])
    assert parked["status"] == "WAITING"
    assert parked["currentStepIds"] == ["await-signature"]
    assert parked["variables"]["totalFee"] == 265  # C+: 25 + 200000 * 0.001 + 40
    history = await api.history(inst["id"])
    assert [h["stepType"] for h in history] == ["SERVICE_TASK", "DECISION_TABLE", "WAIT"]
    status, _ = await api.call("POST", f"/v1/instances/{inst['id']}/signals/await-signature", {})
    assert status == 204
    final = await api.work(
        {"transfer-funds": lambda j: {"transferred": True}, "notify-disbursement": lambda j: None},
        inst["id"],
    )
    assert final["status"] == "COMPLETED"


async def test_definition_versions_and_pinning(api: Api) -> None:
    v1 = wf("e2e-versions", task("a", "ver-a", "end"), END)
    first = await api.upload(v1)
    again = await api.upload(v1)
    assert (first["version"], again["version"]) == (1, 1)
    pinned = await api.start("e2e-versions")
    v2 = wf("e2e-versions", task("a", "ver-a2", "end"), END)
    assert (await api.upload(v2))["version"] == 2
    # the running instance keeps executing version 1; a new one gets version 2
    assert await api.poll(["ver-a2"]) == []
    [job] = await api.poll(["ver-a"])
    assert job["instanceId"] == pinned["id"]
    newer = await api.start("e2e-versions")
    assert newer["definitionVersion"] == 2
    old = await api.start("e2e-versions", version=1)
    assert old["definitionVersion"] == 1
    status, body = await api.call("GET", "/v1/definitions/e2e-versions")
    assert status == 200
    assert body["version"] == 2
    assert body["steps"][0]["jobType"] == "ver-a2"
    assert (await api.call("GET", "/v1/definitions/e2e-versions/versions/1"))[1]["version"] == 1
    assert (await api.call("GET", "/v1/definitions/e2e-versions/versions/9"))[0] == 404
    status, _ = await api.call(
        "POST", "/v1/instances", {"definitionId": "e2e-versions", "definitionVersion": 9}
    )
    assert status == 404


async def test_loan_high_risk_takes_the_first_written_branch(api: Api) -> None:
    """Two branches are true (high risk, good score): written order decides."""
    await api.upload(fixture_definition("loan-disbursement"))
    await api.upload(fixture_definition("loan-application"))
    inst = await api.start("LOS::loan-application", {"applicantId": "A-7", "amount": 5000})
    handlers = {
        "validate-application": lambda j: {"valid": True},
        "credit-score": lambda j: {"creditScore": 700},
        "fraud-screen": lambda j: {"fraudScore": 0.9},
    }
    final = await api.work(handlers, inst["id"])
    assert final["status"] == "COMPLETED"
    steps = [h["stepId"] for h in await api.history(inst["id"])]
    assert "end-rejected" in steps
    assert "approve-loan" not in steps
