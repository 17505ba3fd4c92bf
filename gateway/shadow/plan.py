"""The shadow section of one routing.yaml, as the request path reads it: a pure value.

It lives in the gateway's state (``Snapshot.shadow``) and is rebuilt with it on every reload;
the mirror (mirror.py) reads it for each answer it may copy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from gateway.shadow.ledger import section_key

# Its own hash personalisation: which customers are mirrored does not depend on which version
# routing gives them, and stays the same on every gateway and every run.
_PERSON = b"sf-shadow"
_TWO_TO_64 = float(1 << 64)


@dataclass(frozen=True, slots=True)
class ShadowPlan:
    """The shadow section of one routing.yaml, ready for the request path."""

    version: str
    share: float  # 0..1
    section: str  # fingerprint: a new one starts a new report
    spec: dict[str, Any]
    # When this section took effect in this process (ISO 8601): the report's "since". Not when
    # the first copy was sent or the report first read, which may come much later.
    since: str | None = None

    @classmethod
    def from_spec(
        cls,
        spec: dict[str, Any] | None,
        since: str | None = None,
        previous: ShadowPlan | None = None,
    ) -> ShadowPlan | None:
        """``previous``: the plan before a reload; the same section keeps its ``since`` (a
        reload that changed only weights does not start a new comparison)."""
        if spec is None:
            return None
        section = section_key(spec)
        if previous is not None and previous.section == section:
            since = previous.since
        return cls(spec["version"], float(spec["percent"]) / 100.0, section, spec, since)

    def selects(self, sticky_key: bytes | None, roll: float) -> bool:
        """The sticky key's stable hash when the request has one, else the random ``roll``."""
        if sticky_key:
            digest = hashlib.blake2b(sticky_key, digest_size=8, person=_PERSON).digest()
            roll = int.from_bytes(digest, "big") / _TWO_TO_64
        return roll < self.share
