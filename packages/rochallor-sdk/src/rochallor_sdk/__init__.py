"""Rochallor worker SDK: register handlers for job types and run a worker.

```python
registry = Registry()

@registry.register("charge-payment")
def charge_payment(ctx: dict) -> dict:
    ...

Worker(registry).run()
```
"""

from __future__ import annotations

from rochallor_sdk._config import WorkerSettings, parse_duration
from rochallor_sdk._errors import (
    ApiError,
    ConfigurationError,
    Conflict,
    HandlerAlreadyRegistered,
    HandlerResultError,
    LeaseLost,
    NonRetryableError,
    NotFound,
    RochallorSdkError,
    TransportError,
)
from rochallor_sdk._kafka import DedupCache, KafkaWorker
from rochallor_sdk._metrics import WorkerMetrics
from rochallor_sdk._registry import JobContext, JobResult, Registry
from rochallor_sdk._worker import Worker
from rochallor_sdk.client import (
    AdminClient,
    GrpcClient,
    Job,
    JobClient,
    RestClient,
    create_client,
)

__version__ = "0.1.0"

__all__ = [
    "AdminClient",
    "ApiError",
    "ConfigurationError",
    "Conflict",
    "DedupCache",
    "GrpcClient",
    "HandlerAlreadyRegistered",
    "HandlerResultError",
    "Job",
    "JobClient",
    "JobContext",
    "JobResult",
    "KafkaWorker",
    "LeaseLost",
    "NonRetryableError",
    "NotFound",
    "Registry",
    "RestClient",
    "RochallorSdkError",
    "TransportError",
    "Worker",
    "WorkerMetrics",
    "WorkerSettings",
    "__version__",
    "create_client",
    "parse_duration",
]
