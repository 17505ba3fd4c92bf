"""The counts the controller judges: per version, per process, and their arithmetic.

A source reads cumulative counters (as Prometheus keeps them); the controller subtracts two
readings to judge what happened in between. The judge takes ``VersionCounts`` and nothing else,
so it knows neither where the counts came from nor how they are kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from vocabulary.buckets import GATEWAY_LATENCY_BUCKETS
from vocabulary.buckets import PROBABILITY_BOUNDS as PROBABILITY_BIN_BOUNDS
from vocabulary.tiers import RISK_TIERS as TIERS

__all__ = ["FIELDS", "LATENCY_BOUNDS", "PROBABILITY_BOUNDS", "TUPLES", "Snapshot", "VersionCounts"]

# The gateway's request-duration buckets and the model servers' probability buckets (the
# same ten bins as the shadow comparison's); a bound a source does not see counts as empty.
LATENCY_BOUNDS = GATEWAY_LATENCY_BUCKETS
PROBABILITY_BOUNDS = PROBABILITY_BIN_BOUNDS


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
    # The gateway's count of the probabilities clients got from this version, per bin: kept
    # for a version served by a V2 server (protocol: v2), whose replicas export no histogram.
    served_probability: tuple[float, ...] = (0.0,) * len(PROBABILITY_BOUNDS)
    # As the shadow of another version: compared rows by (client's tier, its tier), row-major,
    # and by probability bin on either side.
    shadow_tiers: tuple[float, ...] = (0.0,) * (len(TIERS) * len(TIERS))
    shadow_bins: tuple[float, ...] = (0.0,) * len(PROBABILITY_BOUNDS)
    shadow_client_bins: tuple[float, ...] = (0.0,) * len(PROBABILITY_BOUNDS)

    @property
    def judged_probability(self) -> tuple[float, ...]:
        """The probability bins the drift checks judge: the replicas' own histogram when it
        counted anything, else the gateway's count of what the version served (a V2 server
        exports no histogram of ours). Never their sum: a version both count (a protocol: v2
        version served by our replicas) would count each row twice. Chosen on the counts of a
        window, not per reading: both fields are kept in every reading, so a replica missing
        from one reading switches no series of the gateway's off and on, which the restart
        rule (``minus``) would take for the gateway's counters starting again."""
        return self.probability if any(self.probability) else self.served_probability

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
        # Field name -> its value, a float or (the names in TUPLES) a tuple of floats.
        out: dict[str, Any] = {}
        for name in FIELDS:
            size = len(getattr(_EMPTY, name)) if name in TUPLES else 1
            taken, flat = flat[:size], flat[size:]
            out[name] = tuple(taken) if name in TUPLES else taken[0]
        return cls(**out)

    def _fields(self) -> tuple[float, ...]:
        out: list[float] = []
        for name in FIELDS:
            value = getattr(self, name)
            out += value if name in TUPLES else [value]
        return tuple(out)


FIELDS = tuple(f.name for f in fields(VersionCounts))
_EMPTY = VersionCounts()
TUPLES = {name for name in FIELDS if isinstance(getattr(_EMPTY, name), tuple)}


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
