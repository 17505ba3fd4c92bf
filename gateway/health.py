"""Active health checks, per the protocol routing.yaml says a version's replicas speak.

``protocol: model_api`` (StreamFlow model servers): ``GET /health``, which must report the version
the replica is pinned to. ``protocol: v2`` (any Open Inference Protocol server):
``GET /v2/models/{name}/ready``, then ``GET /v2/models/{name}``, whose ``versions`` must include
the pinned version (the same version check: a replica serving another version is ejected).
Every replica's V2 model metadata is kept on the replica (a model_api replica's too, when it has
the V2 door), for the V2 metadata endpoints and the input contract (gateway/input_contract.py),
so no request ever waits for it. A V2 server's is read each round (it is its version check); a
model_api replica's only when it is not healthy with metadata already read, or reports another
version: its /health pins the artifact, and the artifact fixes the metadata.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from gateway.input_contract import Contract, difference, reference_of
from gateway.model_metadata import ModelMetadata, parse_metadata
from gateway.offline_quality import ArtifactFacts, facts_from_metadata
from gateway.periodic import every
from gateway.pool import Replica, ReplicaState
from gateway.state import GatewayState
from routing_config import RoutingConfig

# A metadata answer larger than this is not a model's metadata: not read, not kept.
MAX_METADATA_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Probe:
    """One replica's answers this round."""

    ok: bool
    version: str | None  # the version it reports serving
    error: str | None
    metadata: ModelMetadata | None = None


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
        state = self.state()
        config = state.snapshot.loaded.config
        pool = state.snapshot.pool
        offline = state.offline
        replicas = list(pool.replicas())
        results = await asyncio.gather(*(self._probe(r, config) for r in replicas))
        # The stable version's inputs, from a replica that passed this round's checks.
        state.contract = reference_of(
            config.stable,
            (
                (r.version, p.metadata)
                for r, p in zip(replicas, results, strict=True)
                if p.ok and p.version == r.version
            ),
            state.contract,
        )
        for replica, probe in zip(replicas, results, strict=True):
            before = replica.state
            pool.record_check(
                replica,
                ok=probe.ok,
                reported_version=probe.version,
                error=probe.error,
                metadata=probe.metadata,
                contract_error=contract_error(state.contract, probe.metadata),
            )
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
            if r.state is ReplicaState.HEALTHY
            and config.versions[r.version].protocol == "model_api"
            and not offline.known(r.version, r.address)
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

    async def _probe(self, replica: Replica, config: RoutingConfig) -> Probe:
        spec = config.versions[replica.version]
        name = spec.model_name or config.model
        if spec.protocol == "v2":
            return await self._probe_v2(replica, name)
        try:
            resp = await self.client.get(f"{replica.address}/health", timeout=self.timeout)
        except httpx.HTTPError as exc:
            return Probe(False, None, f"/health: {type(exc).__name__}")
        if resp.status_code != 200:
            return Probe(False, None, f"/health answered {resp.status_code}")
        try:
            version = resp.json().get("model_version")
        except ValueError:
            return Probe(False, None, "/health answered non-JSON")
        if (
            replica.state is ReplicaState.HEALTHY
            and replica.metadata is not None
            and version == replica.reported_version
        ):
            return Probe(True, version, None, replica.metadata)  # the same artifact
        # Its V2 door is optional: a model server without one is still healthy, not judged.
        metadata, _ = await self._model_metadata(replica, name)
        return Probe(True, version, None, metadata)

    async def _probe_v2(self, replica: Replica, name: str) -> Probe:
        path = f"/v2/models/{name}/ready"
        try:
            resp = await self.client.get(f"{replica.address}{path}", timeout=self.timeout)
        except httpx.HTTPError as exc:
            return Probe(False, None, f"{path}: {type(exc).__name__}")
        if resp.status_code != 200:
            return Probe(False, None, f"{path} answered {resp.status_code}")
        metadata, error = await self._model_metadata(replica, name)
        if metadata is None:
            return Probe(False, None, error)
        # The version check: the pinned version when the server lists it, else what it lists.
        pinned = replica.version
        version = pinned if pinned in metadata.versions else ", ".join(metadata.versions)
        return Probe(True, version or "no version", None, metadata)

    async def _model_metadata(
        self, replica: Replica, name: str
    ) -> tuple[ModelMetadata | None, str | None]:
        """The replica's GET /v2/models/{name}, or None and why not."""
        path = f"/v2/models/{name}"
        body = bytearray()
        try:
            url = f"{replica.address}{path}"
            async with self.client.stream("GET", url, timeout=self.timeout) as resp:
                if resp.status_code != 200:
                    return None, f"{path} answered {resp.status_code}"
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_METADATA_BYTES:
                        return None, f"{path} answered more than {MAX_METADATA_BYTES} bytes"
        except httpx.HTTPError as exc:
            return None, f"{path}: {type(exc).__name__}"
        try:
            return parse_metadata(json.loads(body)), None
        except ValueError as exc:  # MetadataError is one
            return None, f"{path}: {exc}"


def contract_error(contract: Contract | None, metadata: ModelMetadata | None) -> str | None:
    """Why a replica's inputs break the model's input contract (None: they keep it, or there
    is nothing to compare yet)."""
    if contract is None or metadata is None:
        return None
    return difference(contract, metadata.input_types())
