"""The one interface of a metric source, and the counts every source reduces its series to.

A source reads cumulative counters (as Prometheus keeps them); the controller subtracts two
readings to judge what happened in between. Both sources hand over the same few series as
plain samples, and ``snapshot_from_samples`` turns them into counts per version, so the
scrape source and the Prometheus source cannot disagree on what an error is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from gateway.quantile import LATENCY_BUCKETS
from gateway.shadow.compare import PROBABILITY_BOUNDS as SHADOW_PROBABILITY_BOUNDS

__all__ = [
    "LATENCY_BOUNDS",
    "PROBABILITY_BOUNDS",
    "Sample",
    "Snapshot",
    "Source",
    "SourceError",
    "VersionCounts",
    "snapshot_from_samples",
]

# The gateway's request-duration buckets and the model servers' probability buckets (the same
# ten bins as the shadow report's; model_server/metrics.py keeps its own copy, as the model
# server does not import the gateway); a bound a source does not see counts as empty.
LATENCY_BOUNDS = LATENCY_BUCKETS
PROBABILITY_BOUNDS = SHADOW_PROBABILITY_BOUNDS

# The series a source must provide (names as exposed, with the _total / _bucket suffix).
REQUESTS = "gateway_requests_total"  # {version, reason, status}
FALLBACKS = "gateway_fallbacks_total"  # {from_version, to_version, cause}
UPSTREAM_ERRORS = "gateway_upstream_errors_total"  # {version, replica, cause}
LATENCY = "gateway_request_duration_seconds_bucket"  # {version, le}
PROBABILITY = "model_churn_probability_bucket"  # {version, shadow, le}


class SourceError(Exception):
    """The metrics could not be read; the controller logs it and tries again next check."""


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True, slots=True)
class VersionCounts:
    """Cumulative counts of one version."""

    # Client requests routed to this version, including those it failed that stable then served.
    requests: float = 0.0
    # Of those: answered 5xx by this version, or failed by it and saved by fallback.
    errors: float = 0.0
    saved_by_fallback: float = 0.0
    failed_tries: float = 0.0  # every failed try against its replicas (information only)
    latency: tuple[float, ...] = (0.0,) * (len(LATENCY_BOUNDS) + 1)  # cumulative, last is +Inf
    probability: tuple[float, ...] = (0.0,) * len(PROBABILITY_BOUNDS)  # per bin, not cumulative

    def minus(self, earlier: VersionCounts) -> VersionCounts:
        # A counter that went down means a process restarted; the newer reading is then all
        # that is known since (Prometheus's increase() makes the same call).
        def sub(a: float, b: float) -> float:
            return a - b if a >= b else a

        return VersionCounts(
            requests=sub(self.requests, earlier.requests),
            errors=sub(self.errors, earlier.errors),
            saved_by_fallback=sub(self.saved_by_fallback, earlier.saved_by_fallback),
            failed_tries=sub(self.failed_tries, earlier.failed_tries),
            latency=tuple(map(sub, self.latency, earlier.latency)),
            probability=tuple(map(sub, self.probability, earlier.probability)),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "saved_by_fallback": self.saved_by_fallback,
            "failed_tries": self.failed_tries,
            "latency": list(self.latency),
            "probability": list(self.probability),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> VersionCounts:
        return cls(
            requests=float(data["requests"]),  # type: ignore[arg-type]
            errors=float(data["errors"]),  # type: ignore[arg-type]
            saved_by_fallback=float(data["saved_by_fallback"]),  # type: ignore[arg-type]
            failed_tries=float(data["failed_tries"]),  # type: ignore[arg-type]
            latency=tuple(float(x) for x in data["latency"]),  # type: ignore[attr-defined]
            probability=tuple(float(x) for x in data["probability"]),  # type: ignore[attr-defined]
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    versions: Mapping[str, VersionCounts] = field(default_factory=dict)

    def of(self, version: str) -> VersionCounts:
        return self.versions.get(version, VersionCounts())

    def minus(self, earlier: Snapshot) -> Snapshot:
        return Snapshot({v: c.minus(earlier.of(v)) for v, c in self.versions.items()})

    def to_json(self) -> dict[str, object]:
        return {version: counts.to_json() for version, counts in sorted(self.versions.items())}

    @classmethod
    def from_json(cls, data: Mapping[str, Mapping[str, object]]) -> Snapshot:
        return cls({v: VersionCounts.from_json(c) for v, c in data.items()})


class Source(Protocol):
    def read(self) -> Snapshot:
        """The cumulative counts now, summed over every gateway and replica; SourceError
        when they cannot be read."""
        ...

    def describe(self) -> str:
        """Where the numbers come from, for the log."""
        ...


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


def snapshot_from_samples(samples: Iterable[Sample]) -> Snapshot:
    """Counts per version from the gateway and model-server series (summed over sources)."""
    served: dict[str, float] = {}
    errors: dict[str, float] = {}
    saved: dict[str, float] = {}
    tries: dict[str, float] = {}
    latency: dict[str, dict[int, float]] = {}
    cumulative_probability: dict[str, dict[int, float]] = {}

    def add(table: dict[str, float], version: str, value: float) -> None:
        table[version] = table.get(version, 0.0) + value

    for sample in samples:
        labels = sample.labels
        if sample.name == REQUESTS:
            version = labels.get("version", "none")
            if labels.get("reason") == "fallback":
                # Another version's request that stable answered: counted where it was routed,
                # through gateway_fallbacks_total, not as stable's own.
                continue
            add(served, version, sample.value)
            if labels.get("status", "").startswith("5"):
                add(errors, version, sample.value)
        elif sample.name == FALLBACKS:
            version = labels.get("from_version", "none")
            add(saved, version, sample.value)
        elif sample.name == UPSTREAM_ERRORS:
            add(tries, labels.get("version", "none"), sample.value)
        elif sample.name == LATENCY:
            i = _bound_index(labels.get("le", ""), LATENCY_BOUNDS)
            if i is not None:
                row = latency.setdefault(labels.get("version", "none"), {})
                row[i] = row.get(i, 0.0) + sample.value
        elif sample.name == PROBABILITY and labels.get("shadow") != "true":
            i = _bound_index(labels.get("le", ""), PROBABILITY_BOUNDS)
            if i is not None and i < len(PROBABILITY_BOUNDS):  # +Inf equals the 1.0 bound
                row = cumulative_probability.setdefault(labels.get("version", "none"), {})
                row[i] = row.get(i, 0.0) + sample.value

    versions = set(served) | set(saved) | set(latency) | set(cumulative_probability)
    snapshot: dict[str, VersionCounts] = {}
    for version in versions:
        cumulative = _filled(cumulative_probability.get(version, {}), len(PROBABILITY_BOUNDS))
        bins = [b - a for a, b in zip([0.0, *cumulative[:-1]], cumulative, strict=True)]
        lat = _filled(latency.get(version, {}), len(LATENCY_BOUNDS) + 1)
        snapshot[version] = VersionCounts(
            requests=served.get(version, 0.0) + saved.get(version, 0.0),
            errors=errors.get(version, 0.0) + saved.get(version, 0.0),
            saved_by_fallback=saved.get(version, 0.0),
            failed_tries=tries.get(version, 0.0),
            latency=tuple(lat),
            probability=tuple(bins),
        )
    return Snapshot(snapshot)
