"""The value types routing.yaml is written in: replica URLs, header names, durations, shares.

Shared by the routing schema and the rollout plan; each checks its value and says what is wrong
in the words an operator would use.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictFloat

__all__ = [
    "DEFAULT_PORTS",
    "VERSION_NAME",
    "Duration",
    "Frozen",
    "HeaderName",
    "ReplicaUrl",
    "Share",
]

# Version names travel in response headers (X-Model-Version), so they must be header-safe.
VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
# RFC 9110 token: the characters allowed in a header field name.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
DEFAULT_PORTS = {"http": 80, "https": 443}


def _check_replica_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL with a host")
    try:
        parts.port  # noqa: B018 - urlsplit only validates the port when it is read
    except ValueError as exc:
        raise ValueError(f"{url!r} has an invalid port") from exc
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r}: a replica is a base URL, without query or fragment")
    # A trailing slash would turn base + "/predict" into "//predict" further down.
    return url.rstrip("/")


def _check_header_name(name: str) -> str:
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid HTTP header name")
    return name


_DURATION = re.compile(r"(\d+)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _parse_duration(value: object) -> object:
    """'500ms', '10s', '5m', '1h' (a whole number and a unit, as Prometheus writes them) to
    seconds. Anything else is passed on for pydantic to reject by type."""
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if not match:
            raise ValueError(f"{value!r} is not a duration like 500ms, 10s, 5m or 1h")
        return int(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"{value!r} has no unit; write e.g. {value}s")
    return value


ReplicaUrl = Annotated[str, AfterValidator(_check_replica_url)]
# Seconds, written in the file with a unit.
Duration = Annotated[float, BeforeValidator(_parse_duration), Field(gt=0)]
HeaderName = Annotated[str, AfterValidator(_check_header_name)]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Share = Annotated[StrictFloat, Field(gt=0, lt=1)]
