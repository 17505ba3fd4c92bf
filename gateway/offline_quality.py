"""Each version's offline quality, as its replicas' /metadata state it: holdout AUC, data set.

A model server knows how its artifact scored on its training data's holdout; the operator
deciding a rollout should too, before promoting a model that scored lower offline. The health
loop fetches each replica's GET /metadata once it is healthy (gateway/health.py), once per
replica per start: a replica that stops being healthy is forgotten and asked again when it is
back, since a restarted process may serve another artifact. Memory is bounded by the replicas
routing.yaml lists: entries of replicas no longer configured are dropped each round.

``describe`` is what GET /routing shows and ``streamflow status`` and the page read: per
version, and a warning when the candidate's holdout AUC is below stable's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from routing_config import RoutingConfig

__all__ = ["ArtifactFacts", "OfflineQuality", "candidate_of", "facts_from_metadata", "warning"]


@dataclass(frozen=True, slots=True)
class ArtifactFacts:
    holdout_auc: float | None
    dataset_id: str | None
    sha256: str | None  # the artifact's, to tell two builds of one version apart


def facts_from_metadata(body: Any) -> ArtifactFacts | None:
    """The facts a model server's /metadata gives (None when it is not such a document)."""
    if not isinstance(body, Mapping):
        return None
    metrics = body.get("metrics")
    auc = metrics.get("holdout_auc") if isinstance(metrics, Mapping) else None
    data = body.get("training_data")
    dataset = data.get("dataset_id") if isinstance(data, Mapping) else None
    sha = body.get("sha256")
    return ArtifactFacts(
        holdout_auc=float(auc) if isinstance(auc, int | float) else None,
        dataset_id=dataset if isinstance(dataset, str) else None,
        sha256=sha[:12] if isinstance(sha, str) else None,
    )


class OfflineQuality:
    """Facts per replica, keyed by (version, address); ``None`` marks one asked and unanswered."""

    def __init__(self) -> None:
        self._facts: dict[tuple[str, str], ArtifactFacts | None] = {}

    def known(self, version: str, address: str) -> bool:
        return (version, address) in self._facts

    def record(self, version: str, address: str, facts: ArtifactFacts | None) -> None:
        self._facts[(version, address)] = facts

    def forget(self, version: str, address: str) -> None:
        self._facts.pop((version, address), None)

    def keep_only(self, replicas: Iterable[tuple[str, str]]) -> None:
        current = set(replicas)
        for key in [key for key in self._facts if key not in current]:
            del self._facts[key]

    def by_version(self, versions: Iterable[str]) -> dict[str, dict[str, Any] | None]:
        """Per version: its replicas' facts (the first replica's when they differ, flagged)."""
        out: dict[str, dict[str, Any] | None] = {}
        for version in versions:
            facts = [f for (v, _), f in sorted(self._facts.items()) if v == version and f]
            if not facts:
                out[version] = None
                continue
            first = facts[0]
            out[version] = {
                "holdout_auc": first.holdout_auc,
                "dataset_id": first.dataset_id,
                "sha256": first.sha256,
                "replicas": len(facts),
                "artifacts_differ": len({f.sha256 for f in facts}) > 1,
            }
        return out

    def describe(self, config: RoutingConfig) -> dict[str, Any]:
        versions = self.by_version(config.versions)
        return {"versions": versions, "warning": warning(config, versions)}


def candidate_of(config: RoutingConfig) -> str | None:
    """The version a rollout is about: the plan's candidate, else the shadowed version, else
    the other blue/green colour or the non-stable version with the largest weight."""
    if config.rollout is not None:
        return config.rollout.candidate
    if config.shadow is not None and config.shadow.percent > 0:
        return config.shadow.version
    if config.mode == "blue_green" and config.blue_green is not None:
        colours = (config.blue_green.blue, config.blue_green.green)
        return next((v for v in colours if v != config.stable), None)
    weights = {v: w for v, w in config.weights().items() if v != config.stable and w > 0}
    return max(weights, key=lambda v: weights[v]) if weights else None


def warning(config: RoutingConfig, versions: Mapping[str, Mapping[str, Any] | None]) -> str | None:
    """A sentence when the candidate scored lower offline than stable, else None."""
    candidate = candidate_of(config)
    if candidate is None or candidate == config.stable:
        return None
    theirs, ours = versions.get(candidate), versions.get(config.stable)
    c = theirs.get("holdout_auc") if theirs else None
    s = ours.get("holdout_auc") if ours else None
    if not isinstance(c, float) or not isinstance(s, float) or c >= s:
        return None
    said = (
        f"{candidate}'s holdout AUC {c:.4f} is below stable {config.stable}'s {s:.4f} "
        "(offline, on each training data set's holdout)"
    )
    if theirs and ours and theirs.get("dataset_id") != ours.get("dataset_id"):
        said += "; trained on different data sets, so the two are not on the same customers"
    return said
