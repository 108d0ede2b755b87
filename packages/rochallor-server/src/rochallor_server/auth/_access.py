"""The authorisation layer both transports share.

:meth:`AccessControl.check` takes the ``Authorization`` value (REST header or gRPC metadata)
and an operation name, and returns the caller's :class:`Principal` or raises
:class:`Unauthenticated` / :class:`PermissionDenied`. When access control is not enforced (no
credentials configured: the engine then listens on loopback only) every call is allowed and
credentials are ignored.

Keys are cached by id for ``cache_ttl`` seconds, but only while the cache is *live*: a
revocation evicts the key here at once, and a listener on the database (see
:mod:`rochallor_server.store.postgres.api_keys`) evicts keys revoked by other replicas or the
CLI as their notification arrives. While that listener is not connected, every request reads
the key from the database.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable

from rochallor_server.auth import _keys
from rochallor_server.auth._jwt import JwtVerifier
from rochallor_server.auth._principal import Principal
from rochallor_server.auth._roles import Role, allows, required_permission
from rochallor_server.engine import limits
from rochallor_server.errors import BadRequest, NotFound, PermissionDenied, Unauthenticated

log = logging.getLogger(__name__)

_BEARER = "bearer "


def bearer_token(authorization: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>``; ``None`` when absent."""
    if authorization is None or not authorization.strip():
        return None
    if authorization[: len(_BEARER)].lower() != _BEARER:
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    token = authorization[len(_BEARER) :].strip()
    if not token:
        raise Unauthenticated("the Authorization header carries an empty token")
    return token


class AccessControl:
    def __init__(
        self,
        keys: _keys.KeyStore,
        *,
        enforce: bool,
        jwt: JwtVerifier | None = None,
        cache_ttl: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.keys = keys
        self.enforce = enforce
        self.jwt = jwt
        self.cache_ttl = cache_ttl
        self.cache_live = False
        """Set by the revocation listener while it is connected."""
        self._cache: dict[str, tuple[float, _keys.StoredKey]] = {}
        self._monotonic = monotonic
        self._now = now

    # -- checking calls ------------------------------------------------------------------

    async def check(self, authorization: str | None, operation: str) -> Principal | None:
        """The caller of ``operation``; raises when it may not call it."""
        if not self.enforce:
            return None
        if required_permission(operation) is None:
            return None
        token = bearer_token(authorization)
        if token is None:
            raise Unauthenticated()
        principal = await self.authenticate(token)
        if not allows(principal.role, operation):
            raise PermissionDenied(
                f"role {principal.role.value} of {principal.id} does not allow {operation}"
            )
        return principal

    async def authenticate(self, token: str) -> Principal:
        parsed = _keys.parse_token(token)
        if parsed is not None:
            return await self._key_principal(*parsed)
        if token.startswith(_keys.TOKEN_PREFIX):
            raise Unauthenticated("malformed API key")
        if self.jwt is None:
            raise Unauthenticated("unknown credential (no JWT issuer is configured)")
        return await self.jwt.verify(token)

    async def _key_principal(self, key_id: str, secret: str) -> Principal:
        stored = await self._stored_key(key_id)
        if stored is None or not _keys.secret_matches(secret, stored.secret_sha256):
            raise Unauthenticated("unknown API key")
        if not stored.key.active:
            raise Unauthenticated(f"API key {key_id} is revoked")
        return Principal(id=f"key:{key_id}", role=stored.key.role, job_types=stored.key.job_types)

    async def _stored_key(self, key_id: str) -> _keys.StoredKey | None:
        if self.cache_live:
            cached = self._cache.get(key_id)
            if cached is not None and self._monotonic() - cached[0] < self.cache_ttl:
                return cached[1]
        stored = await self.keys.get_key(key_id)
        if stored is not None and self.cache_live:
            self._cache[key_id] = (self._monotonic(), stored)
        return stored

    def evict(self, key_id: str | None = None) -> None:
        """Forget a cached key (all keys when ``key_id`` is ``None``)."""
        if key_id is None:
            self._cache.clear()
        else:
            self._cache.pop(key_id, None)

    def set_cache_live(self, live: bool) -> None:
        self._cache.clear()
        self.cache_live = live

    # -- managing keys -------------------------------------------------------------------

    async def create_key(
        self,
        *,
        name: str,
        role: str,
        job_types: Iterable[str] | None = None,
        created_by: str | None = None,
    ) -> tuple[_keys.ApiKey, str]:
        """A new key and its token (shown once; only its hash is stored)."""
        key_record, token, digest = new_key(
            name=name, role=role, job_types=job_types, created_by=created_by, now=self._now()
        )
        await self.keys.insert_key(key_record, digest)
        log.info("API key %s (%s, role %s) created", key_record.id, name, key_record.role)
        if not self.enforce:
            log.warning("access control is off: the new key counts once the engine restarts")
        return key_record, token

    async def list_keys(self) -> list[_keys.ApiKey]:
        return await self.keys.list_keys()

    async def revoke_key(self, key_id: str) -> _keys.ApiKey:
        revoked = await self.keys.revoke_key(key_id, self._now())
        self.evict(key_id)
        if revoked is None:
            raise NotFound(f'API key "{key_id}" not found')
        log.info("API key %s revoked", key_id)
        return revoked


def new_key(
    *,
    name: str,
    role: str,
    job_types: Iterable[str] | None,
    created_by: str | None,
    now: dt.datetime | None = None,
) -> tuple[_keys.ApiKey, str, bytes]:
    """Validate the fields of a new key; ``(record, token, secret hash)``."""
    limits.required_identifier("name", name)
    try:
        parsed_role = Role(role)
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise BadRequest(f"role must be one of {choices}") from None
    types = None if job_types is None else frozenset(job_types)
    if types is not None:
        if parsed_role is not Role.WORKER:
            raise BadRequest("jobTypes applies to worker keys only")
        if not types:
            raise BadRequest("jobTypes must list at least one job type")
        for n, job_type in enumerate(sorted(types)):
            limits.required_identifier(f"jobTypes[{n}]", job_type)
    key_id, token, digest = _keys.new_token()
    record = _keys.ApiKey(
        id=key_id,
        name=name,
        role=parsed_role,
        job_types=types,
        created_at=now or dt.datetime.now(dt.UTC),
        created_by=created_by,
    )
    return record, token, digest
