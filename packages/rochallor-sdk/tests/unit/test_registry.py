from __future__ import annotations

import functools
import inspect
from typing import Any

import pytest

from rochallor_sdk import ConfigurationError, HandlerAlreadyRegistered, Registry, RochallorSdkError


def handler_a(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"a": 1}


async def handler_b(ctx: dict[str, Any]) -> None:
    return None


def test_decorator_returns_the_original_function() -> None:
    registry = Registry()

    @registry.register("charge-payment")
    def charge(ctx: dict[str, Any]) -> dict[str, Any]:
        """Doc."""
        return {"x": ctx["variables"]["x"]}

    assert charge.__name__ == "charge"
    assert charge.__doc__ == "Doc."
    assert charge({"variables": {"x": 3}}) == {"x": 3}
    assert registry.get("charge-payment") is charge


def test_async_handler_stays_a_coroutine_function() -> None:
    registry = Registry()
    decorated = registry.register("b")(handler_b)
    assert decorated is handler_b
    assert inspect.iscoroutinefunction(decorated)


def test_call_form_registers_without_decorator_syntax() -> None:
    registry = Registry()
    assert registry.register("a", handler_a) is handler_a
    assert "a" in registry
    assert len(registry) == 1


def test_same_function_twice_is_a_no_op() -> None:
    registry = Registry()
    registry.register("a")(handler_a)
    registry.register("a")(handler_a)
    assert registry.job_types == ["a"]
    assert registry.get("a") is handler_a


def test_one_function_may_serve_several_job_types() -> None:
    registry = Registry()
    registry.register("a")(handler_a)
    registry.register("b")(handler_a)
    assert registry.job_types == ["a", "b"]


@pytest.mark.parametrize(
    "second",
    [handler_b, lambda ctx: None, functools.partial(handler_a)],
    ids=["other-function", "lambda", "partial-of-same"],
)
def test_different_handler_for_same_job_type_raises_and_leaves_registry_unchanged(
    second: Any,
) -> None:
    registry = Registry()
    registry.register("a")(handler_a)
    registry.register("z")(handler_b)
    before = (registry.job_types, registry.get("a"), registry.get("z"))

    with pytest.raises(HandlerAlreadyRegistered) as info:
        registry.register("a")(second)

    assert info.value.job_type == "a"
    assert info.value.existing is handler_a
    assert info.value.new is second
    assert "'a'" in str(info.value)
    assert isinstance(info.value, RochallorSdkError)
    assert (registry.job_types, registry.get("a"), registry.get("z")) == before


def test_job_types_are_case_sensitive_routing_keys() -> None:
    # The engine routes on the exact string, so "Pay" and "pay" are two job types.
    registry = Registry()
    registry.register("pay")(handler_a)
    registry.register("Pay")(handler_b)
    assert registry.get("pay") is handler_a
    assert registry.get("Pay") is handler_b


@pytest.mark.parametrize("job_type", ["", "   ", " padded ", 42])
def test_invalid_job_type_is_rejected_and_nothing_registered(job_type: Any) -> None:
    registry = Registry()
    with pytest.raises(ConfigurationError):
        registry.register(job_type)
    assert len(registry) == 0


def test_non_callable_handler_is_rejected() -> None:
    registry = Registry()
    with pytest.raises(TypeError):
        registry.register("a")(42)  # type: ignore[arg-type]
    assert "a" not in registry


def test_iteration_and_repr() -> None:
    registry = Registry()
    registry.register("x")(handler_a)
    registry.register("y")(handler_b)
    assert list(registry) == ["x", "y"]
    assert repr(registry) == "Registry(['x', 'y'])"
    assert registry.get("missing") is None
