"""Micro-benchmarks for the validator; prints ``name=value`` lines (no assertions)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from rochallor_validator import compile_expression, validate_definition


def generated_definition(n_steps: int = 200) -> dict[str, Any]:
    """A valid definition of ``n_steps`` steps mixing tasks, transformations and decisions."""
    steps: list[dict[str, Any]] = []
    for i in range(n_steps - 2):
        sid, nxt = f"s{i}", f"s{i + 1}" if i < n_steps - 3 else "end"
        kind = i % 4
        if kind == 0:
            timer = {"type": "TIMER", "duration": "PT1H", "interrupting": True,
                     "targetStepId": "timeout"}  # fmt: skip
            steps.append({"id": sid, "name": f"Task {i}", "type": "SERVICE_TASK",
                          "jobType": "work", "retryCount": 1, "nextStep": nxt,
                          "boundaryEvents": [timer]})  # fmt: skip
        elif kind == 1:
            steps.append({"id": sid, "name": f"Set {i}", "type": "TRANSFORMATION", "nextStep": nxt,
                          "transformations": {f"v{i}": f"${{amount * {i} + 1}}"}})  # fmt: skip
        elif kind == 2:
            routes = {f"amount > {i}": nxt, "true": "end"}
            steps.append({"id": sid, "name": f"Route {i}", "type": "DECISION",
                          "conditionalNextSteps": routes})  # fmt: skip
        else:
            steps.append({"id": sid, "name": f"Review {i}", "type": "USER_TASK", "nextStep": nxt})
    steps.append({"id": "end", "name": "End", "type": "END"})
    steps.append({"id": "timeout", "name": "Timed out", "type": "END"})
    return {"id": "BENCH::big", "name": "Big", "steps": steps}


def bench(fn: Any, repeat: int) -> float:
    """Best-of-5 mean seconds per call."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - start) / repeat)
    return best


def main() -> None:
    text = json.dumps(generated_definition())
    issues = validate_definition(text)
    sys.stdout.write(f"validate_200_steps_issues={len(issues)}\n")
    sys.stdout.write(
        f"validate_200_steps_ms={bench(lambda: validate_definition(text), 20) * 1e3:.3f}\n"
    )
    expr = compile_expression("amount > 1000")
    variables = {"amount": 1500, "other": "x"}
    sys.stdout.write(
        f"expr_compare_eval_us={bench(lambda: expr.evaluate(variables), 100_000) * 1e6:.3f}\n"
    )
    bool_expr = compile_expression("#verified == true && #score >= 700")
    bool_vars = {"verified": True, "score": 742}
    and_us = bench(lambda: bool_expr.evaluate_bool(bool_vars), 100_000) * 1e6
    sys.stdout.write(f"expr_and_eval_bool_us={and_us:.3f}\n")


if __name__ == "__main__":
    main()
