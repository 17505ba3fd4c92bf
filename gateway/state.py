"""The gateway's live state: one immutable snapshot of config + routing table + replica pool.

A reload builds a whole new Snapshot and swaps the reference; a request reads the reference once
and finishes on the snapshot it started with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.pool import PoolLimits, ReplicaPool
from gateway.routing import RoutingTable
from gateway.shadow.plan import ShadowPlan
from routing_config import LoadedConfig


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

    @classmethod
    def build(
        cls,
        loaded: LoadedConfig,
        resolve: Mapping[str, str],
        limits: PoolLimits,
        previous: Snapshot | None = None,
    ) -> Snapshot:
        config = loaded.config
        table = RoutingTable.from_config(config)
        loaded_at = now_iso()
        return cls(
            loaded=loaded,
            table=table,
            pool=ReplicaPool.build(config, resolve, limits, previous.pool if previous else None),
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
        )


@dataclass(frozen=True)
class ReloadError:
    at: str
    messages: tuple[str, ...]


@dataclass(eq=False)
class GatewayState:
    snapshot: Snapshot
    last_reload_error: ReloadError | None = None

    def is_ready(self) -> bool:
        """A healthy replica exists for the live route (or for stable, which backs it)."""
        snap = self.snapshot
        table = snap.table
        live = (table.live,) if table.live is not None else table.versions
        return any(snap.pool.has_healthy(v) for v in (*live, table.stable))

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
            "config": config.model_dump(mode="json"),
        }


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
