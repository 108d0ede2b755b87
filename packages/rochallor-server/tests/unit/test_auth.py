"""The authorisation layer on its own: the role table, API keys, the key cache, JWTs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rochallor_server import auth
from rochallor_server.auth import _keys
from rochallor_server.engine.limits import MAX_IDENTIFIER_LENGTH
from rochallor_server.errors import BadRequest, NotFound, PermissionDenied, Unauthenticated
from rochallor_server.testing import JwtIssuer

A, OP, W, V = "admin", "operator", "worker", "viewer"

# Written out by hand from the access model (docs/security.md), not derived from the code.
EXPECTED: dict[str, set[str]] = {
    "UploadDefinition": {A},
    "GetDefinition": {A, OP, V},
    "ListDefinitions": {A, OP, V},
    "ValidateDefinition": {A, OP, V},
    "StartInstance": {A, OP},
    "GetInstance": {A, OP, V},
    "GetInstanceHistory": {A, OP, V},
    "ListInstances": {A, OP, V},
    "CancelInstance": {A, OP},
    "RetryInstance": {A, OP},
    "RetryInstances": {A, OP},
    "CountInstances": {A, OP, V},
    "GetInstanceAudit": {A, OP, V},
    "GetInstanceLinks": {A, OP, V},
    "ListDefinitionVersions": {A, OP, V},
    "GetJobQueues": {A, OP, V},
    "ListExhaustedJobs": {A, OP, V},
    "CompleteUserTask": {A, OP},
    "SignalWait": {A, OP},
    "PollJobs": {A, W},
    "CompleteJob": {A, W},
    "BatchCompleteJobs": {A, W},
    "StartInstances": {A, OP},
    "FailJob": {A, W},
    "ExtendJobLease": {A, W},
    "ReadMetrics": {A, OP, V},
    "DescribeApi": {A, OP, V},
    "CreateApiKey": {A},
    "ListApiKeys": {A},
    "RevokeApiKey": {A},
}


def test_the_table_lists_every_operation_once() -> None:
    assert set(auth.OPERATIONS) == set(EXPECTED)


@pytest.mark.parametrize("operation", sorted(EXPECTED))
@pytest.mark.parametrize("role", list(auth.Role))
def test_role_allows_exactly_its_operations(role: auth.Role, operation: str) -> None:
    assert auth.allows(role, operation) is (role.value in EXPECTED[operation])


def test_health_is_public_and_unknown_routes_are_guarded() -> None:
    assert auth.required_permission("Health") is None
    assert auth.rest_operation("GET", "/healthz") == "Health"
    assert auth.required_permission("ServeUi") is None
    assert auth.rest_operation("GET", "/ui/{tail}") == "ServeUi"
    # A route nobody mapped yet: reading needs read, anything else needs admin.
    read = auth.rest_operation("GET", "/v1/something-new")
    write = auth.rest_operation("POST", "/v1/something-new")
    assert {r for r in auth.Role if auth.allows(r, read)} == {
        auth.Role.ADMIN,
        auth.Role.OPERATOR,
        auth.Role.VIEWER,
    }
    assert {r for r in auth.Role if auth.allows(r, write)} == {auth.Role.ADMIN}
    assert {r for r in auth.Role if auth.allows(r, "NoSuchRpc")} == {auth.Role.ADMIN}


def test_head_is_a_get() -> None:
    assert auth.rest_operation("HEAD", "/healthz") == "Health"
    assert auth.rest_operation("HEAD", "/v1/instances") == "ListInstances"


async def test_a_key_made_while_open_counts_only_after_a_restart() -> None:
    access = _access(enforce=False)
    await access.create_key(name="first", role="admin")
    assert await access.check(None, "UploadDefinition") is None
    assert await auth.AccessControl(access.keys, enforce=True).check(None, "Health") is None


def test_every_rest_route_names_a_known_operation() -> None:
    for operation in auth.REST_OPERATIONS.values():
        assert operation in auth.PUBLIC_OPERATIONS or operation in auth.OPERATIONS


# -- keys ----------------------------------------------------------------------------------------


def test_tokens_round_trip_and_only_the_hash_is_kept() -> None:
    key_id, token, digest = _keys.new_token()
    parsed = _keys.parse_token(token)
    assert parsed is not None and parsed[0] == key_id
    assert _keys.secret_matches(parsed[1], digest)
    assert not _keys.secret_matches(
        parsed[1][:-1] + ("B" if parsed[1].endswith("A") else "A"), digest
    )
    assert parsed[1] not in digest.hex()
    assert len({_keys.new_token()[1] for _ in range(50)}) == 50


@given(st.text(max_size=120))
def test_anything_else_is_not_a_token(text: str) -> None:
    parsed = _keys.parse_token(text)
    assert parsed is None or text.startswith("rk_")


def _access(enforce: bool = True, **kwargs: object) -> auth.AccessControl:
    return auth.AccessControl(auth.MemoryKeyStore(), enforce=enforce, **kwargs)  # type: ignore[arg-type]


async def test_nothing_is_checked_when_not_enforced() -> None:
    access = _access(enforce=False)
    assert await access.check(None, "UploadDefinition") is None
    assert await access.check("Bearer nonsense", "CreateApiKey") is None


async def test_check_authenticates_then_authorises() -> None:
    access = _access()
    key, token = await access.create_key(name="ops", role="operator")
    principal = await access.check(f"Bearer {token}", "CancelInstance")
    assert principal == auth.Principal(id=f"key:{key.id}", role=auth.Role.OPERATOR)
    assert await access.check(f"bearer   {token}", "GetInstance") == principal
    with pytest.raises(PermissionDenied, match="operator"):
        await access.check(f"Bearer {token}", "PollJobs")
    assert await access.check(None, "Health") is None
    for header in (None, "", "Bearer", "Bearer ", "Token abc", f"Basic {token}"):
        with pytest.raises(Unauthenticated):
            await access.check(header, "GetInstance")


@given(st.text(max_size=80))
async def test_any_other_credential_is_unauthenticated(text: str) -> None:
    access = _access()
    with pytest.raises(Unauthenticated):
        await access.check(f"Bearer {text}", "GetInstance")


async def test_a_revoked_key_is_refused_at_once_even_when_cached() -> None:
    access = _access()
    access.set_cache_live(True)
    key, token = await access.create_key(name="ci", role="viewer")
    assert await access.check(f"Bearer {token}", "ListInstances") is not None
    revoked = await access.revoke_key(key.id)
    assert revoked.revoked_at is not None
    with pytest.raises(Unauthenticated, match="revoked"):
        await access.check(f"Bearer {token}", "ListInstances")
    with pytest.raises(NotFound):
        await access.revoke_key("000000000000")


async def test_the_cache_is_used_only_while_live_and_for_its_ttl() -> None:
    clock = [0.0]
    store = auth.MemoryKeyStore()
    access = auth.AccessControl(store, enforce=True, cache_ttl=5.0, monotonic=lambda: clock[0])
    key, token = await access.create_key(name="ci", role="viewer")
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    # Not live (no revocation listener): a change in the store counts at once.
    await access.check(f"Bearer {token}", "ListInstances")
    await store.revoke_key(key.id, now)
    with pytest.raises(Unauthenticated):
        await access.check(f"Bearer {token}", "ListInstances")

    key, token = await access.create_key(name="ci2", role="viewer")
    access.set_cache_live(True)
    await access.check(f"Bearer {token}", "ListInstances")  # cached
    await store.revoke_key(key.id, now)  # elsewhere; the listener has not told us yet
    assert await access.check(f"Bearer {token}", "ListInstances") is not None
    access.evict(key.id)  # the notification arrives
    with pytest.raises(Unauthenticated):
        await access.check(f"Bearer {token}", "ListInstances")

    key, token = await access.create_key(name="ci3", role="viewer")
    await access.check(f"Bearer {token}", "ListInstances")
    await store.revoke_key(key.id, now)
    clock[0] = 5.0  # the entry expired: read again
    with pytest.raises(Unauthenticated):
        await access.check(f"Bearer {token}", "ListInstances")


@pytest.mark.parametrize(
    ("name", "role", "job_types", "problem"),
    [
        ("", "viewer", None, "name"),
        ("x" * (MAX_IDENTIFIER_LENGTH + 1), "viewer", None, "name must be at most"),
        ("a\x00b", "viewer", None, "name"),
        ("x", "root", None, "role must be one of"),
        ("x", "viewer", ["a"], "worker keys only"),
        ("x", "worker", [], "at least one"),
        ("x", "worker", [""], "jobTypes"),
    ],
)
def test_new_keys_are_validated(
    name: str, role: str, job_types: list[str] | None, problem: str
) -> None:
    with pytest.raises(BadRequest, match=problem):
        auth.new_key(name=name, role=role, job_types=job_types, created_by=None)


def test_job_type_limits() -> None:
    limited = auth.Principal(id="key:x", role=auth.Role.WORKER, job_types=frozenset({"a"}))
    auth.check_job_types(limited, ["a"])
    auth.check_job_types(None, ["b"])
    auth.check_job_types(auth.Principal(id="key:y", role=auth.Role.WORKER), ["b"])
    with pytest.raises(PermissionDenied, match="b, c"):
        auth.check_job_types(limited, ["a", "c", "b"])


# -- JWT -----------------------------------------------------------------------------------------


async def test_jwt_tokens(tmp_path: Path) -> None:
    issuer = JwtIssuer(tmp_path / "jwks.json")
    verifier = auth.JwtVerifier(
        auth.JwtSettings(jwks=str(issuer.jwks_path), issuer=issuer.issuer, audience=issuer.audience)
    )
    access = auth.AccessControl(auth.MemoryKeyStore(), enforce=True, jwt=verifier)

    principal = await access.authenticate(issuer.token("svc-1", role="worker", job_types=["a"]))
    assert principal == auth.Principal(
        id="jwt:svc-1", role=auth.Role.WORKER, job_types=frozenset({"a"})
    )
    assert (await access.authenticate(issuer.token("u", role=["viewer", "admin"]))).role is (
        auth.Role.ADMIN
    )
    for bad in (
        issuer.token("u", role="root"),
        issuer.token("u"),
        issuer.token("u", role="admin", lifetime=-5),
        issuer.token("u", role="admin", iss="https://elsewhere"),
        issuer.token("u", role="admin", aud="someone-else"),
        JwtIssuer(tmp_path / "other.json").token("u", role="admin"),
        "not.a.jwt",
    ):
        with pytest.raises(Unauthenticated):
            await access.authenticate(bad)


def test_a_broken_jwks_is_a_configuration_error(tmp_path: Path) -> None:
    from rochallor_server.errors import ConfigError

    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError) as refused:
        auth.JwtVerifier(auth.JwtSettings(jwks=str(tmp_path / "broken.json")))
    assert refused.value.variable == "WE_AUTH_JWKS"
