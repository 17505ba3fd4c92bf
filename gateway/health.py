"""Active health checks: every replica's /health, which must report the version it is pinned to."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import httpx

from gateway.offline_quality import ArtifactFacts, facts_from_metadata
from gateway.periodic import every
from gateway.pool import Replica, ReplicaState
from gateway.state import GatewayState

log = logging.getLogger("gateway.health")


class HealthChecker:
    def __init__(
        self, state: Callable[[], GatewayState], client: httpx.AsyncClient, timeout: float
    ) -> None:
        self.state = state
        self.client = client
        self.timeout = timeout

    async def check_all(self) -> None:
        """One round over the current snapshot's replicas, concurrently; then the /metadata of
        each replica healthy and not yet asked (once per replica per start)."""
        pool = self.state().snapshot.pool
        offline = self.state().offline
        replicas = list(pool.replicas())
        results = await asyncio.gather(*(self._probe(r) for r in replicas))
        for replica, (ok, version, error) in zip(replicas, results, strict=True):
            before = replica.state
            pool.record_check(replica, ok=ok, reported_version=version, error=error)
            if replica.state is not ReplicaState.HEALTHY:
                offline.forget(replica.version, replica.address)
            if replica.state is not before:
                log.info(
                    "replica %s%s (%s): %s -> %s%s",
                    replica.url,
                    f" at {replica.address}" if replica.address != replica.url.rstrip("/") else "",
                    replica.version,
                    before.value,
                    replica.state.value,
                    f" ({replica.last_error})" if replica.state is not ReplicaState.HEALTHY else "",
                )

        offline.keep_only((r.version, r.address) for r in replicas)
        ask = [
            r
            for r in replicas
            if r.state is ReplicaState.HEALTHY and not offline.known(r.version, r.address)
        ]
        if ask:
            facts = await asyncio.gather(*(self._metadata(r) for r in ask))
            for replica, found in zip(ask, facts, strict=True):
                offline.record(replica.version, replica.address, found)

    async def _metadata(self, replica: Replica) -> ArtifactFacts | None:
        """The replica's artifact facts; None (not asked again until it restarts) on failure."""
        try:
            resp = await self.client.get(f"{replica.address}/metadata", timeout=self.timeout)
            return facts_from_metadata(resp.json()) if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    async def run(self, interval: float) -> None:
        await every(interval, self.check_all, log, "health round failed")

    async def _probe(self, replica: Replica) -> tuple[bool, str | None, str | None]:
        try:
            resp = await self.client.get(f"{replica.address}/health", timeout=self.timeout)
        except httpx.HTTPError as exc:
            return False, None, f"/health: {type(exc).__name__}"
        if resp.status_code != 200:
            return False, None, f"/health answered {resp.status_code}"
        try:
            version = resp.json().get("model_version")
        except ValueError:
            return False, None, "/health answered non-JSON"
        return True, version, None
