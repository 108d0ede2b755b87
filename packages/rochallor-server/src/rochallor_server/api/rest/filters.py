"""Query-string filters shared by the REST handlers (instance lists, counts, bulk retry)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

from rochallor_server.api.rest import serde
from rochallor_server.errors import BadRequest
from rochallor_server.service.ports import InstanceFilter

_MAX_VERSION = 2**31 - 1


_LEAP_SECOND = re.compile(r"(T\d\d:\d\d):60")


def parse_timestamp(name: str, text: str) -> dt.datetime:
    """An RFC 3339 timestamp with an offset (``Z`` or ``±hh:mm``); ``t``/``z`` in any case, a
    leap second read as the second before it."""
    # An unencoded "+" of an offset arrives in a query string as a space.
    normalised = _LEAP_SECOND.sub(r"\1:59", text.strip().replace(" ", "+").upper())
    try:
        value = dt.datetime.fromisoformat(normalised)
    except ValueError:
        raise BadRequest(f"{name} must be an RFC 3339 timestamp") from None
    if value.tzinfo is None:
        raise BadRequest(f"{name} must be an RFC 3339 timestamp with an offset")
    return value


def _version(name: str, value: int | None) -> int | None:
    if value is not None and not 1 <= value <= _MAX_VERSION:
        raise BadRequest(f"{name} must be a positive integer")
    return value


def instance_filter(
    fields: Mapping[str, object], *, with_status: bool = True, json_body: bool = False
) -> InstanceFilter:
    """The instance filter of a query string, or of a JSON object with the same names
    (``json_body``: the version must then be a JSON integer).

    ``status`` is taken as given (an unknown one matches nothing, as ever); the other
    parameters are checked, and a bad one is a 400 naming it.
    """

    def text(name: str, *, empty_is_absent: bool = True) -> str | None:
        value = fields.get(name)
        if value is None or (value == "" and empty_is_absent):
            return None
        if not isinstance(value, str):
            raise BadRequest(f"{name} must be a string")
        return value

    version_field = fields.get("definitionVersion")
    if isinstance(version_field, str) and not json_body:
        version = serde.parse_int(version_field)
        if version is None:
            raise BadRequest("definitionVersion must be a positive integer")
    elif version_field is None or (
        isinstance(version_field, int) and not isinstance(version_field, bool)
    ):
        version = version_field
    else:
        raise BadRequest("definitionVersion must be a positive integer")
    # A timestamp given empty is not one (the text filters read empty as absent).
    after = text("startedAfter", empty_is_absent=False)
    before = text("startedBefore", empty_is_absent=False)
    started_after = None if after is None else parse_timestamp("startedAfter", after)
    started_before = None if before is None else parse_timestamp("startedBefore", before)
    return InstanceFilter(
        definition_id=text("definitionId"),
        status=text("status") if with_status else None,
        business_key=text("businessKey"),
        definition_version=_version("definitionVersion", version),
        started_after=started_after,
        started_before=started_before,
    )
