"""Access control: credentials with roles, checked identically on REST and gRPC.

- :mod:`._roles`: roles, permissions and the one table of operation → permission.
- :mod:`._keys`: API keys (``rk_<id>_<secret>``, stored hashed) and the key store port.
- :mod:`._jwt`: OIDC/JWT bearer tokens verified against a JWKS.
- :mod:`._access`: :class:`AccessControl`, the layer both transports call.
- :mod:`._principal`: the caller of the running request (a context variable).

Nothing here imports a transport: ``api/rest/auth.py`` and ``api/grpc/auth.py`` adapt it.
"""

from __future__ import annotations

from rochallor_server.auth._access import AccessControl, bearer_token, new_key
from rochallor_server.auth._jwt import JwtSettings, JwtVerifier
from rochallor_server.auth._keys import ApiKey, KeyStore, MemoryKeyStore, StoredKey
from rochallor_server.auth._principal import (
    Principal,
    bind,
    check_job_types,
    current,
    current_id,
    unbind,
)
from rochallor_server.auth._roles import (
    OPERATIONS,
    REST_OPERATIONS,
    ROLE_PERMISSIONS,
    Permission,
    Role,
    allows,
    required_permission,
    rest_operation,
)

__all__ = [
    "OPERATIONS",
    "REST_OPERATIONS",
    "ROLE_PERMISSIONS",
    "AccessControl",
    "ApiKey",
    "JwtSettings",
    "JwtVerifier",
    "KeyStore",
    "MemoryKeyStore",
    "Permission",
    "Principal",
    "Role",
    "StoredKey",
    "allows",
    "bearer_token",
    "bind",
    "check_job_types",
    "current",
    "current_id",
    "new_key",
    "required_permission",
    "rest_operation",
    "unbind",
]
