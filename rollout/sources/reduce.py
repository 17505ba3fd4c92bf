"""The samples a source read, reduced to counts per version and per process.

Requests and errors as ``measures/request_counts.py`` defines them (the status page's numbers);
latency, probability bins and the shadow comparison read from their histograms and counters.
Probability bins come from two places, kept apart: the replicas' own histogram
(``probability``) and the gateway's count of what a V2 server served (``served_probability``);
``VersionCounts.judged_probability`` says which one a window's drift checks read.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from measures.request_counts import UNROUTED, RequestCounts, request_counts
from rollout.counts import LATENCY_BOUNDS, PROBABILITY_BOUNDS, Snapshot, VersionCounts
from rollout.sources.base import (
    LATENCY,
    PROBABILITY,
    SERVED_BINS,
    SHADOW_BINS,
    SHADOW_ROWS,
    UPSTREAM_ERRORS,
    Sample,
)
from vocabulary.buckets import PROBABILITY_BIN_LABELS
from vocabulary.tiers import RISK_TIERS as TIERS
from vocabulary.tiers import TIER_INDEX

__all__ = ["snapshot_from_samples"]

BIN_INDEX = {label: i for i, label in enumerate(PROBABILITY_BIN_LABELS)}


def _bound_index(le: str, bounds: tuple[float, ...]) -> int | None:
    """Index of bucket bound ``le`` in ``bounds`` (len(bounds) for +Inf); None if unknown."""
    value = math.inf if le == "+Inf" else float(le)
    if value == math.inf:
        return len(bounds)
    for i, bound in enumerate(bounds):
        if math.isclose(bound, value):
            return i
    return None


def _filled(known: Mapping[int, float], size: int) -> list[float]:
    """A cumulative histogram of ``size`` buckets from the bounds a source gave: a missing
    bound holds what the bound below it holds (nothing fell between them)."""
    out, last = [], 0.0
    for i in range(size):
        last = known.get(i, last)
        out.append(last)
    return out


def snapshot_from_samples(
    samples: Iterable[Sample], scraped: Mapping[str, float] | None = None
) -> Snapshot:
    """Counts per version from the gateway and model-server series, kept per ``instance``
    label (the process that exposed them) and summed; ``scraped`` says when each instance's
    samples were taken (Snapshot.scraped)."""
    by_instance: dict[str, list[Sample]] = {}
    for sample in samples:
        by_instance.setdefault(sample.labels.get("instance", ""), []).append(sample)
    return Snapshot.of_instances(
        {instance: _counts_of(group) for instance, group in sorted(by_instance.items())},
        scraped,
    )


def _counts_of(samples: Iterable[Sample]) -> dict[str, VersionCounts]:
    """Counts per version from one process's series."""
    samples = list(samples)
    routed = request_counts(samples)
    tries: dict[str, float] = {}
    latency: dict[str, dict[int, float]] = {}
    cumulative_probability: dict[str, dict[int, float]] = {}
    served_bins: dict[str, list[float]] = {}
    shadow_tiers: dict[str, list[float]] = {}
    shadow_bins: dict[str, dict[str, list[float]]] = {}

    def add(table: dict[str, float], version: str, value: float) -> None:
        table[version] = table.get(version, 0.0) + value

    for sample in samples:
        labels = sample.labels
        if sample.name == UPSTREAM_ERRORS:
            add(tries, labels.get("version", UNROUTED), sample.value)
        elif sample.name == LATENCY:
            i = _bound_index(labels.get("le", ""), LATENCY_BOUNDS)
            if i is not None:
                row = latency.setdefault(labels.get("version", UNROUTED), {})
                row[i] = row.get(i, 0.0) + sample.value
        elif sample.name == PROBABILITY and labels.get("shadow") != "true":
            i = _bound_index(labels.get("le", ""), PROBABILITY_BOUNDS)
            if i is not None and i < len(PROBABILITY_BOUNDS):  # +Inf equals the 1.0 bound
                row = cumulative_probability.setdefault(labels.get("version", UNROUTED), {})
                row[i] = row.get(i, 0.0) + sample.value

        elif sample.name == SERVED_BINS and labels.get("bin") in BIN_INDEX:
            cells = served_bins.setdefault(
                labels.get("version", UNROUTED), [0.0] * len(PROBABILITY_BOUNDS)
            )
            cells[BIN_INDEX[labels["bin"]]] += sample.value
        elif sample.name == SHADOW_ROWS:
            i = TIER_INDEX.get(labels.get("primary_tier", ""))
            j = TIER_INDEX.get(labels.get("shadow_tier", ""))
            if i is not None and j is not None:
                cells = shadow_tiers.setdefault(
                    labels.get("shadow", UNROUTED), [0.0] * len(TIERS) ** 2
                )
                cells[i * len(TIERS) + j] += sample.value
        elif sample.name == SHADOW_BINS and labels.get("bin") in BIN_INDEX:
            side = labels.get("side")
            if side in ("primary", "shadow"):
                sides = shadow_bins.setdefault(labels.get("shadow", UNROUTED), {})
                cells = sides.setdefault(side, [0.0] * len(PROBABILITY_BOUNDS))
                cells[BIN_INDEX[labels["bin"]]] += sample.value

    versions = set(routed) | set(latency) | set(cumulative_probability) | set(served_bins)
    versions |= set(shadow_tiers) | set(shadow_bins)
    no_bins = [0.0] * len(PROBABILITY_BOUNDS)
    snapshot: dict[str, VersionCounts] = {}
    for version in versions:
        cumulative = _filled(cumulative_probability.get(version, {}), len(PROBABILITY_BOUNDS))
        bins = [b - a for a, b in zip([0.0, *cumulative[:-1]], cumulative, strict=True)]
        lat = _filled(latency.get(version, {}), len(LATENCY_BOUNDS) + 1)
        snapshot[version] = VersionCounts(
            requests=routed.get(version, RequestCounts()).requests,
            errors=routed.get(version, RequestCounts()).errors,
            saved_by_fallback=routed.get(version, RequestCounts()).saved_by_fallback,
            failed_tries=tries.get(version, 0.0),
            latency=tuple(lat),
            probability=tuple(bins),
            served_probability=tuple(served_bins.get(version, no_bins)),
            shadow_tiers=tuple(shadow_tiers.get(version, [0.0] * len(TIERS) ** 2)),
            shadow_bins=tuple(shadow_bins.get(version, {}).get("shadow", no_bins)),
            shadow_client_bins=tuple(shadow_bins.get(version, {}).get("primary", no_bins)),
        )
    return snapshot
