"""The gateway's live state: one immutable snapshot of config + routing table + replica pool.

A reload builds a whole new Snapshot and swaps the reference; a request reads the reference once
and finishes on the snapshot it started with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gateway.dns import HostTable
from gateway.input_contract import Contract
from gateway.lanes import Lane, lanes_of, passthrough_of
from gateway.offline_quality import OfflineQuality
from gateway.pool import PoolLimits, ReplicaPool, ReplicaState
from gateway.routing import RoutingTable
from gateway.settling import Flight, settled_revision, still_flying
from gateway.shadow.plan import ShadowPlan
from gateway.v2_door import short_cut_paths
from routing_config import LoadedConfig
from routing_config.replica_key import replica_address_key


@dataclass(frozen=True, eq=False)
class Snapshot:
    loaded: LoadedConfig
    table: RoutingTable
    pool: ReplicaPool
    revision: bytes
    pin_header: bytes | None  # lower-case, as ASGI gives header names
    sticky_header: bytes | None
    shadow: ShadowPlan | None  # None: nothing is mirrored
    loaded_at: str
    versions: frozenset[str]  # every configured version: the values a version label may take
    lanes: Mapping[str, Lane]  # per version: how a request reaches its replicas (gateway/lanes.py)
    passthrough: frozenset[str]  # the versions /predict reaches as it came (model-API replicas)
    paths: Mapping[bytes, str]  # the server's short-cut: /predict's and this model's V2 infer
    flight: Flight  # what this snapshot routed and has not counted yet (gateway/settling.py)
    earlier: tuple[Flight, ...]  # earlier snapshots' flights still busy when this one was built

    @classmethod
    def build(
        cls,
        loaded: LoadedConfig,
        resolve: Mapping[str, str],
        limits: PoolLimits,
        previous: Snapshot | None = None,
        hosts: HostTable | None = None,
    ) -> Snapshot:
        config = loaded.config
        table = RoutingTable.from_config(config)
        pool = ReplicaPool.build(
            config,
            resolve,
            limits,
            previous.pool if previous else None,
            hosts.addresses if hosts is not None else None,
        )
        # A rebuild of the same config (new addresses for a host) is not a reload.
        loaded_at = (
            previous.loaded_at if previous is not None and previous.loaded is loaded else now_iso()
        )
        return cls(
            loaded=loaded,
            table=table,
            pool=pool,
            revision=loaded.revision.encode(),
            pin_header=config.pinning.header.lower().encode() if config.pinning else None,
            sticky_header=table.sticky_header.lower().encode() if table.sticky_header else None,
            shadow=ShadowPlan.from_spec(
                config.shadow.model_dump() if config.shadow else None,
                since=loaded_at,
                previous=previous.shadow if previous else None,
            ),
            loaded_at=loaded_at,
            versions=frozenset(config.versions),
            lanes=lanes_of(config),
            passthrough=passthrough_of(config),
            paths=short_cut_paths(config),
            flight=Flight(loaded.revision),
            earlier=still_flying(previous.earlier, previous.flight) if previous else (),
        )

    @property
    def settled_revision(self) -> str:
        """The revision every count from now on is of, once it is this snapshot's."""
        return settled_revision(self.flight, self.earlier)


@dataclass(frozen=True)
class ReloadError:
    at: str
    messages: tuple[str, ...]


@dataclass(frozen=True)
class RoutingSource:
    """Where the routing in effect came from, for /routing: a file and the hash of the content
    in effect, or a ConfigMap, the resourceVersion in effect and the watch's status."""

    kind: str  # "file" | "configmap"
    location: str  # the path, or NAMESPACE/NAME
    version: str | None = None  # content hash (file) or resourceVersion (configmap) in effect
    seen_version: str | None = None  # the newest seen, when it was not taken (invalid)
    watch: str | None = None  # the ConfigMap watch: listing, watching, backing off: ...

    def as_dict(self) -> dict[str, object]:
        key = "content_hash" if self.kind == "file" else "resource_version"
        out: dict[str, object] = {"kind": self.kind, "location": self.location, key: self.version}
        if self.kind == "configmap":
            out["seen_resource_version"] = self.seen_version or self.version
            out["watch"] = self.watch
        return out


@dataclass(eq=False)
class GatewayState:
    snapshot: Snapshot
    last_reload_error: ReloadError | None = None
    hosts: HostTable | None = None  # the replica host lookups, when the gateway does them
    source: RoutingSource | None = None
    # Each replica's /metadata facts (holdout AUC, data set), filled by the health loop.
    offline: OfflineQuality = field(default_factory=OfflineQuality)
    # The stable version's V2 inputs, every version's must equal (gateway/input_contract.py).
    contract: Contract | None = None

    def entries(self) -> list[dict[str, object]]:
        """Each routing.yaml replica entry: its host's last lookup (None when the gateway does
        not resolve it: an IP, a host the local stack maps, lookups off) and the health of
        every address it stands for."""
        return _entries_of(self.snapshot, self.hosts)

    def is_ready(self) -> bool:
        """A healthy replica exists for the live route (or for stable, which backs it)."""
        snap = self.snapshot
        table = snap.table
        live = (table.live,) if table.live is not None else table.versions
        return any(snap.pool.has_healthy(v) for v in (*live, table.stable))

    def describe_contract(self) -> dict[str, object]:
        """The input contract and each version's standing against it: ``agrees`` (its replicas'
        inputs were compared and are the same), ``differs`` (with the reason: it gets no
        traffic) or ``unknown`` (no replica's V2 metadata read yet)."""
        versions: dict[str, dict[str, object]] = {}
        for version, replicas in self.snapshot.pool.by_version.items():
            differs = next(
                (r.last_error for r in replicas if r.state is ReplicaState.CONTRACT_MISMATCH),
                None,
            )
            if differs is not None:
                versions[version] = {"status": "differs", "reason": differs}
            elif self.contract is not None and any(r.metadata for r in replicas):
                versions[version] = {"status": "agrees"}
            else:
                versions[version] = {"status": "unknown"}
        return {
            "reference": self.contract.as_dict() if self.contract is not None else None,
            "versions": versions,
        }

    def describe(self) -> dict[str, object]:
        """What GET /routing shows: active config, revision, reload error, every replica."""
        snap = self.snapshot
        config = snap.loaded.config
        error = self.last_reload_error
        return {
            "service": config.service,
            "mode": config.mode,
            "stable": config.stable,
            "revision": snap.loaded.revision,
            "source": self.source.as_dict() if self.source is not None else None,
            "loaded_at": snap.loaded_at,
            "last_reload_error": (
                {"at": error.at, "messages": list(error.messages)} if error else None
            ),
            "weights": config.weights(),
            "blue_green": config.blue_green.model_dump() if config.blue_green else None,
            "sticky_header": snap.table.sticky_header,
            "pinning": config.pinning.model_dump() if config.pinning else None,
            "shadow": {
                "configured": config.shadow.model_dump() if config.shadow else None,
                "active": bool(snap.shadow and snap.shadow.share > 0),
                "note": shadow_note(snap.shadow),
            },
            "ready": self.is_ready(),
            "replicas": [replica.as_dict() for replica in snap.pool.replicas()],
            "entries": self.entries(),
            "offline_quality": self.offline.describe(config),
            "input_contract": self.describe_contract(),
            "config": config.model_dump(mode="json"),
        }


def _entries_of(snap: Snapshot, hosts: HostTable | None) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for version, spec in snap.loaded.config.versions.items():
        members = snap.pool.by_version.get(version, ())
        for url in spec.replicas:
            lookup = hosts.answers.get(replica_address_key(url)) if hosts is not None else None
            out.append(
                {
                    "version": version,
                    "url": url,
                    "lookup": lookup.as_dict() if lookup is not None else None,
                    "addresses": [
                        {
                            "address": r.address,
                            "state": r.state.value,
                            "healthy": r.state is ReplicaState.HEALTHY,
                        }
                        for r in members
                        if r.url == url
                    ],
                }
            )
    return out


def shadow_note(plan: ShadowPlan | None) -> str:
    if plan is None:
        return "no shadow configured"
    if plan.share <= 0:
        return f"shadow {plan.version} at 0%: nothing is mirrored"
    return (
        f"mirroring {plan.spec['percent']}% of predictions to {plan.version}; "
        "its answers are compared (GET /shadow), never returned"
    )


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
