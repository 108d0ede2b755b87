"""``rochallor worker MODULE:REGISTRY``: the SDK worker for a registry of the user's code."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import os
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import click

from rochallor_sdk import _config, _errors, _registry, _worker
from rochallor_sdk.cli import _format
from rochallor_sdk.cli._common import CliError, ExitCode, api_failure, common_options, options

logger = logging.getLogger("rochallor_sdk.cli")


def load_registry(spec: str) -> _registry.Registry:
    """Import ``MODULE:REGISTRY`` (a dotted module or a ``.py`` path) and return the registry."""
    try:
        module_name, attribute = _format.parse_registry_spec(spec)
    except _format.BadArgument as exc:
        raise CliError(str(exc), code=ExitCode.USAGE) from None
    try:
        module = _import(module_name)
    except CliError:
        raise
    except Exception as exc:
        raise CliError(_import_failure(module_name, exc), code=ExitCode.USAGE) from None
    registry = getattr(module, attribute, None)
    if registry is None:
        raise CliError(
            f"{module_name} has no attribute {attribute!r} (expected a rochallor_sdk.Registry)",
            code=ExitCode.USAGE,
        )
    if not isinstance(registry, _registry.Registry):
        raise CliError(
            f"{module_name}:{attribute} is a {type(registry).__name__}, "
            "not a rochallor_sdk.Registry",
            code=ExitCode.USAGE,
        )
    return registry


def _import(module_name: str) -> ModuleType:
    if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
        path = Path(module_name).resolve()
        if not path.is_file():
            raise CliError(f"{module_name}: no such file", code=ExitCode.USAGE)
        sys.path.insert(0, str(path.parent))
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise CliError(f"{module_name}: cannot be imported", code=ExitCode.USAGE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        return module
    # Like `python -m`: modules of the current directory are importable.
    sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise CliError(
                f"no module named {module_name!r} (run from the folder that holds it, "
                "or give a path such as handlers.py:registry)",
                code=ExitCode.USAGE,
            ) from None
        raise


def _import_failure(module_name: str, exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"importing {module_name} failed: {type(exc).__name__}: {exc}{where}"


def _logged(job_type: str, handler: _registry.Handler) -> _registry.Handler:
    """``handler``, logging each job it finishes (the worker logs failures itself)."""

    def log(ctx: Mapping[str, Any], started: float) -> None:
        took = (time.monotonic() - started) * 1000
        logger.info(
            "%s: job %s of instance %s done in %.0fms",
            job_type,
            ctx.get("id"),
            ctx.get("instanceId"),
            took,
        )

    if _registry.is_async_handler(handler):

        @functools.wraps(handler)
        async def run_async(ctx: dict[str, Any]) -> Any:
            started = time.monotonic()
            result = await handler(ctx)
            log(ctx, started)
            return result

        return run_async

    @functools.wraps(handler)
    def run_sync(ctx: dict[str, Any]) -> Any:
        started = time.monotonic()
        result = handler(ctx)
        log(ctx, started)
        return result

    return run_sync


@click.command()
@click.argument("spec", metavar="MODULE:REGISTRY")
@click.option(
    "--job-type",
    "job_types",
    multiple=True,
    metavar="TYPE",
    help="Only handle this job type of the registry. Repeatable [default: all of them].",
)
@click.option(
    "--parallelism",
    type=click.IntRange(min=1),
    help="Jobs handled at once [default: 16; env ROCHALLOR_WORKER_PARALLELISM].",
)
@click.option(
    "--transport",
    type=click.Choice(["rest", "grpc"]),
    help="rest (default) or grpc; with grpc, --engine is the gRPC target (localhost:9090).",
)
@click.option("--worker-id", help="Lock owner shown by the engine [default: host-pid-random].")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve /metrics and /healthz on this port.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
)
@common_options
def worker(
    spec: str,
    job_types: tuple[str, ...],
    parallelism: int | None,
    transport: str | None,
    worker_id: str | None,
    metrics_port: int | None,
    log_level: str,
) -> None:
    """Run a worker for the handlers of a Registry in your module, until Ctrl-C.

    MODULE is a module importable from the current folder (shop.handlers) or a .py file;
    REGISTRY is the name of its rochallor_sdk.Registry (default: registry). Other settings
    come from the ROCHALLOR_WORKER_* variables (docs/sdk.md).

    \b
    Example:
      rochallor worker examples.order_fulfilment:registry --parallelism 4
    """
    opts = options()
    registry = load_registry(spec)
    unknown = [job_type for job_type in job_types if job_type not in registry]
    if unknown:
        raise CliError(
            f"job type {unknown[0]!r} is not in {spec} (it has: {', '.join(registry.job_types)})",
            code=ExitCode.USAGE,
        )
    selected = _registry.Registry()
    for job_type in job_types or registry.job_types:
        handler = registry.get(job_type)
        assert handler is not None
        selected.register(job_type, _logged(job_type, handler))
    if len(selected) == 0:
        raise CliError(f"{spec} has no handlers registered", code=ExitCode.USAGE)

    engine_url = opts.engine
    if engine_url is None and transport == "grpc" and not _config_env("ENGINE_URL"):
        engine_url = "localhost:9090"
    try:
        settings = _config.WorkerSettings.from_env(
            engine_url=engine_url,
            transport=transport,
            worker_id=worker_id,
            parallelism=parallelism,
            metrics_port=metrics_port,
            token=opts.token,
        )
    except _errors.ConfigurationError as exc:
        raise CliError(str(exc), code=ExitCode.USAGE) from None
    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(message)s",
    )
    try:
        _worker.Worker(selected, settings=settings).run()
    except _errors.RochallorSdkError as exc:
        raise api_failure(exc, settings.engine_url) from None


def _config_env(name: str) -> str | None:
    return os.environ.get(_config.ENV_PREFIX + name)
