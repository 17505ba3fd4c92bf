"""Replicas of each version: where they live, whether they are healthy, which one serves next.

Configuration is immutable and swapped whole; a replica's health is the one thing that changes
in place, written by the health loop (active checks) and by the proxy (passive checks), both on
the event loop, so no locks are needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urlsplit

from gateway.dns import member_address
from gateway.model_metadata import ModelMetadata
from routing_config import RoutingConfig
from routing_config.replica_key import replica_address_key


class ReplicaState(StrEnum):
    UNKNOWN = "unknown"  # not checked yet: never routed to
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"  # /health failed or did not answer
    VERSION_MISMATCH = "version_mismatch"  # answers, but serves another model version
    # Answers, but its V2 inputs differ from the stable version's (gateway/input_contract.py).
    CONTRACT_MISMATCH = "contract_mismatch"
    EJECTED = "ejected"  # too many consecutive request failures; cooling down


# A replica in one of these that has never been healthy is still starting (its process not yet
# listening, or its model still loading).
STARTING_STATES = frozenset({ReplicaState.UNKNOWN, ReplicaState.UNHEALTHY})
AT_CAP = "at the in-flight cap"  # why a healthy replica takes no request now


@dataclass(eq=False)
class Replica:
    version: str
    url: str  # as routing.yaml names it
    address: str  # base URL actually dialed (after the resolve map)
    state: ReplicaState = ReplicaState.UNKNOWN
    consecutive_failures: int = 0
    ejected_until: float = 0.0
    inflight: int = 0
    ejections: int = 0  # in a row, without a successful request between: lengthens the cool-down
    last_error: str | None = None
    reported_version: str | None = None
    ever_healthy: bool = False  # has passed a health check since it joined: no longer starting
    # Its V2 model metadata as of the last health round (None: not served, or not readable).
    metadata: ModelMetadata | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "url": self.url,
            "address": self.address,
            "state": self.state.value,
            "healthy": self.state is ReplicaState.HEALTHY,
            "consecutive_failures": self.consecutive_failures,
            "ejections": self.ejections,
            "inflight": self.inflight,
            "last_error": self.last_error,
            "reported_version": self.reported_version,
        }


def resolve_address(url: str, resolve: Mapping[str, str]) -> str:
    """Map a configured replica URL through a curl --resolve style {host:port: addr} map.

    Looked up by ``replica_address_key``, the key the local launcher writes the map with; the
    map's own keys are compared lower-cased, as host names are."""
    parts = urlsplit(url)
    key = replica_address_key(url)
    target = resolve.get(key)
    if target is None:
        target = next((addr for name, addr in resolve.items() if name.lower() == key), None)
    if target is None:
        return url.rstrip("/")
    return f"{parts.scheme}://{target}{parts.path.rstrip('/')}"


def member_addresses(
    url: str,
    resolve: Mapping[str, str],
    hosts: Callable[[str], tuple[str, ...] | None] | None,
) -> list[str]:
    """The addresses one replica entry stands for: the local stack's mapping, else each address
    its host resolved to, else the URL itself (a host never resolved, or resolving to nothing,
    is dialed by name: it then fails its health checks like any unreachable replica)."""
    mapped = resolve_address(url, resolve)
    if mapped != url.rstrip("/") or hosts is None:
        return [mapped]
    found = hosts(replica_address_key(url))
    if not found:
        return [mapped]
    return [member_address(url, address) for address in found]


@dataclass(frozen=True)
class PoolLimits:
    eject_after_failures: int = 3
    eject_cooldown_s: float = 5.0
    max_inflight_per_replica: int = 128


@dataclass(eq=False)
class ReplicaPool:
    by_version: dict[str, tuple[Replica, ...]]
    limits: PoolLimits = field(default_factory=PoolLimits)
    _next: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        config: RoutingConfig,
        resolve: Mapping[str, str],
        limits: PoolLimits,
        previous: ReplicaPool | None = None,
        hosts: Callable[[str], tuple[str, ...] | None] | None = None,
    ) -> ReplicaPool:
        """One Replica per configured URL, or per address of its host when ``hosts`` (the
        gateway's lookups, gateway/dns.py) knows some; a replica kept across a reload or a
        new answer (same version, entry and address) keeps its health."""
        known = {(r.version, r.url, r.address): r for r in previous.replicas()} if previous else {}
        by_version: dict[str, tuple[Replica, ...]] = {}
        for version, spec in config.versions.items():
            replicas = []
            for url in spec.replicas:
                for address in member_addresses(url, resolve, hosts):
                    kept = known.get((version, url, address))
                    replicas.append(kept or Replica(version=version, url=url, address=address))
            by_version[version] = tuple(replicas)
        return cls(by_version=by_version, limits=limits)

    def replicas(self) -> Iterable[Replica]:
        for group in self.by_version.values():
            yield from group

    def has_healthy(self, version: str) -> bool:
        for replica in self.by_version.get(version, ()):  # a loop: any() over a generator is
            if replica.state is ReplicaState.HEALTHY:  # slower, and this runs per request
                return True
        return False

    def choose(self, version: str, exclude: Collection[Replica] = ()) -> Replica | None:
        """Fewest in-flight requests among healthy replicas under their cap; round robin on ties."""
        group = self.by_version.get(version)
        if not group:
            return None
        start = self._next.get(version, 0)
        self._next[version] = start + 1 if start + 1 < len(group) else 0
        best: Replica | None = None
        fewest = self.limits.max_inflight_per_replica  # a replica at its cap is never chosen
        healthy = ReplicaState.HEALTHY
        for replica in group[start:] + group[:start] if start else group:
            if replica.state is healthy and replica.inflight < fewest and replica not in exclude:
                best, fewest = replica, replica.inflight
        return best

    def unavailable(self, version: str) -> dict[str, int]:
        """Why no replica of ``version`` can take a request now: replicas counted by reason
        (``starting`` means never healthy yet: not checked, or not answering since it joined)."""
        reasons: dict[str, int] = {}
        cap = self.limits.max_inflight_per_replica
        for replica in self.by_version.get(version, ()):
            state = replica.state
            if state is ReplicaState.HEALTHY:
                reason = AT_CAP if replica.inflight >= cap else "available"
            elif not replica.ever_healthy and state in STARTING_STATES:
                reason = "starting"
            else:
                reason = state.value
            reasons[reason] = reasons.get(reason, 0) + 1
        return reasons

    def contract_reason(self, version: str) -> str | None:
        """How the version's inputs differ from the stable version's, when that keeps its
        replicas out of the routing (gateway/input_contract.py)."""
        for replica in self.by_version.get(version, ()):
            if replica.state is ReplicaState.CONTRACT_MISMATCH:
                return replica.last_error
        return None

    # --- passive health (called by the proxy) ---

    def record_success(self, replica: Replica) -> None:
        replica.consecutive_failures = 0
        replica.ejections = 0

    def record_failure(self, replica: Replica, detail: str, now: float | None = None) -> bool:
        """Count one failed request; return True when this failure ejects the replica."""
        replica.consecutive_failures += 1
        replica.last_error = detail
        if (
            replica.consecutive_failures >= self.limits.eject_after_failures
            and replica.state is ReplicaState.HEALTHY
        ):
            # A replica that passes /health but keeps failing requests would otherwise cost a
            # burst of failures every cool-down; doubling it (up to 32x) bounds that cost.
            replica.state = ReplicaState.EJECTED
            cooldown = self.limits.eject_cooldown_s * 2 ** min(replica.ejections, 5)
            replica.ejections += 1
            replica.ejected_until = (now or time.monotonic()) + cooldown
            return True
        return False

    # --- active health (called by the health loop) ---

    def record_check(
        self,
        replica: Replica,
        *,
        ok: bool,
        reported_version: str | None,
        error: str | None,
        now: float | None = None,
        metadata: ModelMetadata | None = None,
        contract_error: str | None = None,
    ) -> None:
        """Apply one health check's answer. An ejected replica waits out its cool-down first.

        ``contract_error`` says how its inputs differ from the stable version's: a replica that
        answers well but takes other inputs is never routed to (gateway/input_contract.py)."""
        now = now or time.monotonic()
        replica.reported_version = reported_version
        replica.metadata = metadata
        if replica.state is ReplicaState.EJECTED and now < replica.ejected_until:
            return
        if not ok:
            replica.state = ReplicaState.UNHEALTHY
            replica.last_error = error
        elif reported_version != replica.version:
            replica.state = ReplicaState.VERSION_MISMATCH
            replica.last_error = (
                f"serves {reported_version}, routing.yaml pins it to {replica.version}"
            )
        elif contract_error is not None:
            replica.state = ReplicaState.CONTRACT_MISMATCH
            replica.last_error = contract_error
        else:
            replica.state = ReplicaState.HEALTHY
            replica.ever_healthy = True
            replica.consecutive_failures = 0
            replica.last_error = None
