"""Transports: the ``JobClient``/``AdminClient`` protocols and their REST and gRPC clients."""

from __future__ import annotations

import ssl

from rochallor_sdk.client._base import AdminClient, Job, JobClient
from rochallor_sdk.client._grpc import GrpcClient
from rochallor_sdk.client._rest import RestClient


def create_client(
    engine_url: str,
    transport: str = "rest",
    *,
    request_timeout: float = 10.0,
    token: str | None = None,
    tls: ssl.SSLContext | bool | None = None,
) -> RestClient | GrpcClient:
    """A REST or gRPC client for ``engine_url`` (``transport`` is ``"rest"`` or ``"grpc"``);
    ``token`` and ``tls`` as for :class:`RestClient` / :class:`GrpcClient`."""
    if transport == "rest":
        return RestClient(engine_url, request_timeout=request_timeout, token=token, tls=tls)
    if transport == "grpc":
        return GrpcClient(engine_url, request_timeout=request_timeout, token=token, tls=tls)
    raise ValueError(f"transport must be 'rest' or 'grpc', got {transport!r}")


__all__ = ["AdminClient", "GrpcClient", "Job", "JobClient", "RestClient", "create_client"]
