"""Who is calling: the principal of the current request, in a context variable.

The transports set it after authenticating (REST middleware, gRPC ``RecvRequest`` hook); the
service reads it to attribute audit entries and to apply a worker key's job-type limit.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable

import attrs

from rochallor_server.auth._roles import Role
from rochallor_server.errors import PermissionDenied


@attrs.frozen(kw_only=True)
class Principal:
    id: str
    """``key:<key id>`` for an API key, ``jwt:<subject>`` for a bearer token."""
    role: Role
    job_types: frozenset[str] | None = None
    """The only job types a worker credential may work on; ``None``: any."""

    def may_work_on(self, job_type: str) -> bool:
        return self.job_types is None or job_type in self.job_types


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "rochallor_principal", default=None
)


def current() -> Principal | None:
    """The authenticated caller of the running request; ``None`` when access control is off or
    outside a request (sweepers, timers, chaining)."""
    return _current.get()


def current_id() -> str | None:
    principal = _current.get()
    return None if principal is None else principal.id


def bind(principal: Principal | None) -> contextvars.Token[Principal | None]:
    return _current.set(principal)


def unbind(token: contextvars.Token[Principal | None]) -> None:
    _current.reset(token)


def check_job_types(principal: Principal | None, job_types: Iterable[str]) -> None:
    """Raise :class:`PermissionDenied` if ``principal`` may not work on one of ``job_types``."""
    if principal is None or principal.job_types is None:
        return
    refused = sorted(t for t in job_types if t not in principal.job_types)
    if refused:
        raise PermissionDenied(
            f"credential {principal.id} may not work on job type(s): {', '.join(refused)}"
        )
