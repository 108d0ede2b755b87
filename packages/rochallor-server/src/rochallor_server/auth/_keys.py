"""API keys: ``rk_<key id>_<secret>``, stored as the SHA-256 of the secret.

The secret is 32 random bytes, so a fast hash is enough (nothing to brute-force); the key id is
public (it names the key in lists, logs and the audit log) and finds the stored hash, which is
compared in constant time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from typing import Protocol

import attrs

from rochallor_server.auth._roles import Role

TOKEN_PREFIX = "rk_"
_TOKEN = re.compile(r"^rk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


@attrs.frozen(kw_only=True)
class ApiKey:
    """A stored key without its secret."""

    id: str
    name: str
    role: Role
    job_types: frozenset[str] | None
    created_at: dt.datetime
    created_by: str | None
    revoked_at: dt.datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@attrs.frozen(kw_only=True)
class StoredKey:
    key: ApiKey
    secret_sha256: bytes


def new_token() -> tuple[str, str, bytes]:
    """``(key id, token, sha256 of the secret)`` for a fresh key."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return key_id, f"{TOKEN_PREFIX}{key_id}_{secret}", hash_secret(secret)


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse_token(token: str) -> tuple[str, str] | None:
    """``(key id, secret)`` of a well-formed API key, else ``None``."""
    match = _TOKEN.match(token)
    if match is None:
        return None
    return match.group(1), match.group(2)


def secret_matches(secret: str, stored_sha256: bytes) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_sha256)


class KeyStore(Protocol):
    """Where keys live (PostgreSQL in the server; a dict in unit tests)."""

    async def insert_key(self, key: ApiKey, secret_sha256: bytes) -> None: ...

    async def get_key(self, key_id: str) -> StoredKey | None: ...

    async def list_keys(self) -> list[ApiKey]: ...

    async def revoke_key(self, key_id: str, at: dt.datetime) -> ApiKey | None:
        """Mark the key revoked (idempotent) and tell every replica; ``None`` if unknown."""
        ...

    async def has_active_keys(self) -> bool: ...


class MemoryKeyStore:
    """A :class:`KeyStore` in a dict: the REST application's keys when access control is off,
    and unit tests of access control."""

    def __init__(self) -> None:
        self.keys: dict[str, StoredKey] = {}

    async def insert_key(self, key: ApiKey, secret_sha256: bytes) -> None:
        self.keys[key.id] = StoredKey(key=key, secret_sha256=secret_sha256)

    async def get_key(self, key_id: str) -> StoredKey | None:
        return self.keys.get(key_id)

    async def list_keys(self) -> list[ApiKey]:
        return sorted((s.key for s in self.keys.values()), key=lambda k: (k.created_at, k.id))

    async def revoke_key(self, key_id: str, at: dt.datetime) -> ApiKey | None:
        stored = self.keys.get(key_id)
        if stored is None:
            return None
        if stored.key.revoked_at is None:
            stored = attrs.evolve(stored, key=attrs.evolve(stored.key, revoked_at=at))
            self.keys[key_id] = stored
        return stored.key

    async def has_active_keys(self) -> bool:
        return any(s.key.active for s in self.keys.values())
