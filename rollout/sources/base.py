"""The one interface of a metric source, and the counts every source reduces its series to.

A source reads cumulative counters (as Prometheus keeps them); the controller subtracts two
readings to judge what happened in between. Both sources hand over the same few series as
plain samples, and ``snapshot_from_samples`` turns them into counts per version, so the
scrape source and the Prometheus source cannot disagree on what an error is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from measures.request_counts import UNROUTED, RequestCounts, request_counts
from vocabulary import metric_names
from vocabulary.buckets import GATEWAY_LATENCY_BUCKETS, PROBABILITY_BIN_LABELS
from vocabulary.buckets import PROBABILITY_BOUNDS as PROBABILITY_BIN_BOUNDS
from vocabulary.tiers import RISK_TIERS as TIERS
from vocabulary.tiers import TIER_INDEX

__all__ = [
    "LATENCY_BOUNDS",
    "PROBABILITY_BOUNDS",
    "Sample",
    "NotYet",
    "Snapshot",
    "Source",
    "SourceError",
    "VersionCounts",
    "snapshot_from_samples",
]

# The gateway's request-duration buckets and the model servers' probability buckets (the
# same ten bins as the shadow comparison's); a bound a source does not see counts as empty.
LATENCY_BOUNDS = GATEWAY_LATENCY_BUCKETS
PROBABILITY_BOUNDS = PROBABILITY_BIN_BOUNDS

# The series a source must provide (names as exposed, with the _total / _bucket suffix).
REQUESTS = metric_names.GATEWAY_REQUESTS.total
FALLBACKS = metric_names.GATEWAY_FALLBACKS.total
UPSTREAM_ERRORS = metric_names.GATEWAY_UPSTREAM_ERRORS.total
LATENCY = metric_names.GATEWAY_REQUEST_DURATION.bucket
PROBABILITY = metric_names.MODEL_CHURN_PROBABILITY.bucket
# The gateway's shadow comparison (gateway/shadow/metrics.py), counted for the shadow version.
SHADOW_ROWS = metric_names.GATEWAY_SHADOW_ROWS.total
SHADOW_BINS = metric_names.GATEWAY_SHADOW_PROBABILITY_ROWS.total


BIN_INDEX = {label: i for i, label in enumerate(PROBABILITY_BIN_LABELS)}


class SourceError(Exception):
    """The metrics could not be read; the controller logs it and tries again next check."""


class NotYet(Exception):
    """A routing.yaml revision has not yet taken effect everywhere the source looks: says
    what is still behind."""


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True, slots=True)
class VersionCounts:
    """Cumulative counts of one version."""

    # Client requests routed to this version and its errors, as measures/request_counts.py
    # defines them (the status page's numbers): 5xx it answered plus requests it failed that
    # stable then served (saved_by_fallback).
    requests: float = 0.0
    errors: float = 0.0
    saved_by_fallback: float = 0.0
    failed_tries: float = 0.0  # every failed try against its replicas (information only)
    latency: tuple[float, ...] = (0.0,) * (len(LATENCY_BOUNDS) + 1)  # cumulative, last is +Inf
    probability: tuple[float, ...] = (0.0,) * len(PROBABILITY_BOUNDS)  # per bin, not cumulative
    # As the shadow of another version: compared rows by (client's tier, its tier), row-major,
    # and by probability bin on either side.
    shadow_tiers: tuple[float, ...] = (0.0,) * (len(TIERS) * len(TIERS))
    shadow_bins: tuple[float, ...] = (0.0,) * len(PROBABILITY_BOUNDS)
    shadow_client_bins: tuple[float, ...] = (0.0,) * len(PROBABILITY_BOUNDS)

    def went_down_since(self, earlier: VersionCounts) -> bool:
        """A counter lower than before: the process that keeps them restarted from 0."""
        return any(a < b for a, b in zip(self._fields(), earlier._fields(), strict=True))

    def minus(self, earlier: VersionCounts) -> VersionCounts:
        # One process keeps all of these counters: when any went down it restarted, and what
        # it holds now is all that is known of the window (Prometheus's increase() makes the
        # same call per series). Judged field by field, a restart would mix halves of two
        # lives into one histogram.
        if self.went_down_since(earlier):
            return self
        return self._from_fields(
            a - b for a, b in zip(self._fields(), earlier._fields(), strict=True)
        )

    def plus(self, other: VersionCounts) -> VersionCounts:
        return self._from_fields(
            a + b for a, b in zip(self._fields(), other._fields(), strict=True)
        )

    @classmethod
    def _from_fields(cls, values: Iterable[float]) -> VersionCounts:
        flat = list(values)
        # Field name -> its value, a float or (the names in _TUPLES) a tuple of floats.
        out: dict[str, Any] = {}
        for name in _FIELDS:
            size = len(getattr(_EMPTY, name)) if name in _TUPLES else 1
            taken, flat = flat[:size], flat[size:]
            out[name] = tuple(taken) if name in _TUPLES else taken[0]
        return cls(**out)

    def _fields(self) -> tuple[float, ...]:
        out: list[float] = []
        for name in _FIELDS:
            value = getattr(self, name)
            out += value if name in _TUPLES else [value]
        return tuple(out)

    def to_json(self) -> dict[str, object]:
        return {
            name: list(getattr(self, name)) if name in _TUPLES else getattr(self, name)
            for name in _FIELDS
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VersionCounts:
        """From ``to_json``'s object as read back from JSON (a number or a list of numbers per
        field); a field an older log did not write is empty."""
        out: dict[str, Any] = {}  # field name -> a float, or a tuple of floats (_TUPLES)
        for name in _FIELDS:
            if name in data:
                value = data[name]
                out[name] = tuple(float(x) for x in value) if name in _TUPLES else float(value)
        return cls(**out)


_FIELDS = tuple(f.name for f in fields(VersionCounts))
_EMPTY = VersionCounts()
_TUPLES = {name for name in _FIELDS if isinstance(getattr(_EMPTY, name), tuple)}


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Counts per version, summed over every process read, and kept per process (the
    ``instance``: a gateway or replica address) too, so that one process restarting is told
    apart from the others, as Prometheus tells its series apart."""

    versions: Mapping[str, VersionCounts] = field(default_factory=dict)
    # instance -> version -> counts; None when the source knows no instances (one, unnamed).
    instances: Mapping[str, Mapping[str, VersionCounts]] | None = None
    # instance -> when its samples were taken, on the source's clock (Prometheus's scrape
    # times); None for a reading taken live, now. Not part of the counts: two readings of the
    # same counts are equal whenever they were taken.
    scraped: Mapping[str, float] | None = field(default=None, compare=False)

    @classmethod
    def of_instances(
        cls,
        instances: Mapping[str, Mapping[str, VersionCounts]],
        scraped: Mapping[str, float] | None = None,
    ) -> Snapshot:
        total: dict[str, VersionCounts] = {}
        for counts in instances.values():
            for version, c in counts.items():
                total[version] = total[version].plus(c) if version in total else c
        return cls(total, {i: dict(c) for i, c in instances.items()}, scraped)

    def taken_before(self, moment: float) -> list[str]:
        """The instances whose samples were taken before ``moment`` (source clock): a window
        that begins at ``moment`` cannot start from them yet. None for a live reading."""
        if self.scraped is None:
            return []
        return sorted(i for i, at in self.scraped.items() if at < moment)

    def newer_than(self, earlier: Snapshot) -> bool:
        """Whether anything was taken since ``earlier``: a live reading always is; a scraped
        one only when some instance was scraped again."""
        if self.scraped is None or earlier.scraped is None:
            return True
        return any(at > earlier.scraped.get(i, -math.inf) for i, at in self.scraped.items())

    @property
    def parts(self) -> Mapping[str, Mapping[str, VersionCounts]]:
        return self.instances if self.instances is not None else {"": self.versions}

    def of(self, version: str) -> VersionCounts:
        return self.versions.get(version, VersionCounts())

    def minus(self, earlier: Snapshot) -> Snapshot:
        """What happened since ``earlier``, instance by instance; an instance that restarted
        counts from 0, one that is gone adds nothing."""
        before = earlier.parts
        return Snapshot.of_instances(
            {
                instance: {
                    v: c.minus(before.get(instance, {}).get(v, VersionCounts()))
                    for v, c in counts.items()
                }
                for instance, counts in self.parts.items()
            }
        )

    def restarted_since(self, earlier: Snapshot) -> list[str]:
        """The instances (``instance/version``) whose counters went down since ``earlier``."""
        before = earlier.parts
        return sorted(
            f"{instance}/{v}" if instance else v
            for instance, counts in self.parts.items()
            for v, c in counts.items()
            if c.went_down_since(before.get(instance, {}).get(v, VersionCounts()))
        )

    def rebased(self, now: Snapshot) -> Snapshot:
        """This baseline with every instance that restarted since put back to 0: its counters
        began again, so what they hold from now on is all new. Subtracting two readings,
        unlike increase() over every scrape, would otherwise see the restarted counter climb
        past the old baseline and take only the part above it."""
        restarted = {
            (instance, v)
            for instance, counts in now.parts.items()
            for v, c in counts.items()
            if c.went_down_since(self.parts.get(instance, {}).get(v, VersionCounts()))
        }
        if not restarted:
            return self
        kept = {
            instance: {v: c for v, c in counts.items() if (instance, v) not in restarted}
            for instance, counts in self.parts.items()
        }
        if self.instances is None:
            return Snapshot(kept[""])
        return Snapshot.of_instances(kept)

    def to_json(self) -> dict[str, object]:
        if self.instances is None:
            return {version: counts.to_json() for version, counts in sorted(self.versions.items())}
        return {
            "instances": {
                instance: {v: c.to_json() for v, c in sorted(counts.items())}
                for instance, counts in sorted(self.instances.items())
            }
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Snapshot:
        """From ``to_json``'s object as read back from JSON."""
        if "instances" in data:
            instances = data["instances"]
            return cls.of_instances(
                {
                    str(i): {str(v): VersionCounts.from_json(c) for v, c in counts.items()}
                    for i, counts in instances.items()
                }
            )
        return cls({v: VersionCounts.from_json(c) for v, c in data.items()})


class Source(Protocol):
    def read(self) -> Snapshot:
        """The cumulative counts now, summed over every gateway and replica; SourceError
        when they cannot be read."""
        ...

    def took_effect(self, revision: str) -> float:
        """Once every gateway serves routing.yaml ``revision`` (``gateway_config_info``), a
        moment on the clock of ``Snapshot.scraped`` after which every sample counts only
        traffic routed by it: a window's baseline is a reading with nothing taken before it.
        NotYet while some gateway is behind; SourceError when it cannot be asked."""
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

    versions = set(routed) | set(latency) | set(cumulative_probability)
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
            shadow_tiers=tuple(shadow_tiers.get(version, [0.0] * len(TIERS) ** 2)),
            shadow_bins=tuple(shadow_bins.get(version, {}).get("shadow", no_bins)),
            shadow_client_bins=tuple(shadow_bins.get(version, {}).get("primary", no_bins)),
        )
    return snapshot
