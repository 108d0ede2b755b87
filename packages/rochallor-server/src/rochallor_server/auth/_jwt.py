"""OIDC/JWT bearer tokens verified against a JWKS (a file or an ``https://`` URL).

A token is accepted when its signature verifies with a key of the set (found by ``kid``), it
has not expired, and its issuer and audience match the configured ones (when configured). The
role comes from one claim (``role`` by default): a role name, or a list of names of which the
most privileged counts. Optional claim ``job_types`` limits a worker token like a worker key.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import jwt

from rochallor_server.auth._principal import Principal
from rochallor_server.auth._roles import Role
from rochallor_server.errors import ConfigError, Unauthenticated

_PRIVILEGE = [Role.ADMIN, Role.OPERATOR, Role.WORKER, Role.VIEWER]


@attrs.frozen(kw_only=True)
class JwtSettings:
    jwks: str
    """A path to a JWKS file, or an ``http(s)://`` URL serving one."""
    issuer: str | None = None
    audience: str | None = None
    role_claim: str = "role"
    algorithms: tuple[str, ...] = ("RS256", "ES256")


class JwtVerifier:
    def __init__(self, settings: JwtSettings) -> None:
        self.settings = settings
        self._client: jwt.PyJWKClient | None = None
        self._keys: jwt.PyJWKSet | None = None
        if settings.jwks.startswith(("https://", "http://")):
            self._client = jwt.PyJWKClient(settings.jwks, cache_keys=True, lifespan=300)
        else:
            try:
                self._keys = jwt.PyJWKSet.from_dict(json.loads(Path(settings.jwks).read_text()))
            except (OSError, ValueError, jwt.PyJWTError) as exc:
                raise ConfigError(
                    "WE_AUTH_JWKS", f"cannot load a JWKS from {settings.jwks}: {exc}"
                ) from None

    def _signing_key(self, token: str) -> Any:
        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token).key
        assert self._keys is not None
        kid = jwt.get_unverified_header(token).get("kid")
        for key in self._keys.keys:
            if kid is None or key.key_id == kid:
                return key.key
        raise Unauthenticated("bearer token signed by an unknown key")

    async def verify(self, token: str) -> Principal:
        try:
            if self._client is not None:
                key = await asyncio.to_thread(self._signing_key, token)  # may fetch the JWKS
            else:
                key = self._signing_key(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(self.settings.algorithms),
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                options={
                    "require": ["exp", "sub"],
                    "verify_aud": self.settings.audience is not None,
                },
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid bearer token: {exc}") from None
        role = _role(claims.get(self.settings.role_claim))
        if role is None:
            raise Unauthenticated(
                f"bearer token carries no known role in claim {self.settings.role_claim!r}"
            )
        job_types = claims.get("job_types")
        return Principal(
            id=f"jwt:{claims['sub']}",
            role=role,
            job_types=frozenset(map(str, job_types)) if isinstance(job_types, list) else None,
        )


def _role(value: object) -> Role | None:
    names: Sequence[object] = value if isinstance(value, list) else [value]
    granted = {n for n in names if isinstance(n, str)}
    for role in _PRIVILEGE:
        if role.value in granted:
            return role
    return None
