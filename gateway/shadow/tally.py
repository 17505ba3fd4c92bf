"""What the comparisons add up to: plain counts, mergeable across worker processes.

A ``PairTally`` holds one (primary version, shadow version) pair's counts: outcomes, the tier
confusion matrix, probability bins of each side, |Δp| and latency histograms, top-reason agreement.
The report's tallies also keep a bounded sample of |Δp| (exact quantiles up to SAMPLE_SIZE rows)
and the largest disagreements; everything is bounded whatever clients send.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.shadow.compare import RowComparison
from vocabulary.buckets import GATEWAY_LATENCY_BUCKETS as LATENCY_BUCKETS
from vocabulary.buckets import PROBABILITY_BOUNDS
from vocabulary.tiers import RISK_TIERS as TIERS
from vocabulary.tiers import TIER_INDEX

# Why a mirror was not compared, or that it was. A closed set: these become metric labels.
OUTCOMES = (
    "compared",
    "dropped",  # the in-flight cap was reached: never sent
    "no_replica",  # the shadow version had no healthy replica
    "timeout",
    "connect_error",
    "protocol_error",
    "status_5xx",
    "status_4xx",  # the shadow refused what the client's version accepted
    "bad_answer",  # not a prediction answer, or not the same rows
)
FAILURES = tuple(o for o in OUTCOMES if o not in ("compared", "dropped"))
SIDES = ("primary", "shadow")

# |Δp| histogram bounds (probability units) and latency bounds (seconds, as the gateway's).
DELTA_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
LATENCY_BOUNDS = LATENCY_BUCKETS
SAMPLE_SIZE = 5000  # |Δp| values kept for quantiles: exact up to this many rows, sampled beyond
LARGEST = 5  # disagreements kept for an operator to replay


@dataclass(frozen=True, order=True, slots=True)
class Disagreement:
    abs_delta: float
    request_id: str = field(compare=False)
    row: int = field(compare=False)  # index in the batch; 0 for /predict
    primary_probability: float = field(compare=False)
    shadow_probability: float = field(compare=False)
    primary_tier: str = field(compare=False)
    shadow_tier: str = field(compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "row": self.row,
            "abs_delta": self.abs_delta,
            "primary": {"probability": self.primary_probability, "tier": self.primary_tier},
            "shadow": {"probability": self.shadow_probability, "tier": self.shadow_tier},
        }


def _zeros(n: int) -> list[int]:
    return [0] * n


@dataclass(eq=False)
class PairTally:
    detail: bool = True  # keep the |Δp| sample and the largest disagreements
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    confusion: list[list[int]] = field(default_factory=lambda: [_zeros(3) for _ in TIERS])
    bins: dict[str, list[int]] = field(
        default_factory=lambda: {side: _zeros(len(PROBABILITY_BOUNDS)) for side in SIDES}
    )
    probability_sum: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SIDES, 0.0))
    delta_bins: list[int] = field(default_factory=lambda: _zeros(len(DELTA_BOUNDS)))
    delta_sum: float = 0.0
    delta_max: float = 0.0
    same_top: int = 0
    # Rows both sides explained, by how many features their top 3 share (0..3): sums to the rows
    # whose reasons were compared.
    overlap: list[int] = field(default_factory=lambda: _zeros(4))
    latency: dict[str, list[int]] = field(
        default_factory=lambda: {side: _zeros(len(LATENCY_BOUNDS) + 1) for side in SIDES}
    )
    latency_sum: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SIDES, 0.0))
    sample: list[float] = field(default_factory=list)
    largest: list[Disagreement] = field(default_factory=list)  # a min-heap of LARGEST

    @property
    def rows(self) -> int:
        return sum(map(sum, self.confusion))

    @property
    def mirrored(self) -> int:
        """Mirrors sent (or that found no replica): every outcome but a drop at the cap."""
        return sum(self.outcomes.values()) - self.outcomes["dropped"]

    @property
    def failed(self) -> int:
        return sum(self.outcomes[o] for o in FAILURES)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] += 1

    def add(
        self,
        comparisons: Sequence[RowComparison],
        request_id: str,
        latency_s: dict[str, float],
    ) -> None:
        """One compared request: its rows, and how long each side took."""
        self.outcomes["compared"] += 1
        for side, seconds in latency_s.items():
            self.latency[side][bisect.bisect_left(LATENCY_BOUNDS, seconds)] += 1
            self.latency_sum[side] += seconds
        for row, c in enumerate(comparisons):
            self.confusion[TIER_INDEX[c.primary.tier]][TIER_INDEX[c.shadow.tier]] += 1
            for side, p in (("primary", c.primary.probability), ("shadow", c.shadow.probability)):
                self.bins[side][_bin(PROBABILITY_BOUNDS, p)] += 1
                self.probability_sum[side] += p
            delta = c.abs_delta
            self.delta_bins[_bin(DELTA_BOUNDS, delta)] += 1
            self.delta_sum += delta
            self.delta_max = max(self.delta_max, delta)
            if c.explained:  # reasons only where both sides give them (a V2-only shadow does not)
                self.same_top += c.same_top
                self.overlap[c.overlap] += 1
            if self.detail:
                self._keep(delta, request_id, row, c)

    def _keep(self, delta: float, request_id: str, row: int, c: RowComparison) -> None:
        seen = self.rows  # this row included
        if len(self.sample) < SAMPLE_SIZE:
            self.sample.append(delta)
        else:
            # Reservoir sampling: every row so far is in the sample with the same chance.
            slot = random.randrange(seen)
            if slot < SAMPLE_SIZE:
                self.sample[slot] = delta
        if len(self.largest) < LARGEST or delta > self.largest[0].abs_delta:
            entry = Disagreement(
                delta,
                request_id,
                row,
                c.primary.probability,
                c.shadow.probability,
                c.primary.tier,
                c.shadow.tier,
            )
            if len(self.largest) < LARGEST:
                heapq.heappush(self.largest, entry)
            else:
                heapq.heapreplace(self.largest, entry)

    # --- across workers ---

    def to_json(self) -> dict[str, Any]:
        return {
            "outcomes": self.outcomes,
            "confusion": self.confusion,
            "bins": self.bins,
            "probability_sum": self.probability_sum,
            "delta_bins": self.delta_bins,
            "delta_sum": self.delta_sum,
            "delta_max": self.delta_max,
            "same_top": self.same_top,
            "overlap": self.overlap,
            "latency": self.latency,
            "latency_sum": self.latency_sum,
            "sample": self.sample,
            "largest": [
                [
                    d.abs_delta,
                    d.request_id,
                    d.row,
                    d.primary_probability,
                    d.shadow_probability,
                    d.primary_tier,
                    d.shadow_tier,
                ]
                for d in self.largest
            ],
        }

    @classmethod
    def from_json(cls, data: Any) -> PairTally:
        """A tally another worker wrote; ValueError if it is not what ``to_json`` writes."""
        try:
            tally = cls(
                outcomes={o: _count(data["outcomes"].get(o, 0)) for o in OUTCOMES},
                confusion=[_counts(row, 3) for row in _list(data["confusion"], 3)],
                bins={s: _counts(data["bins"][s], len(PROBABILITY_BOUNDS)) for s in SIDES},
                probability_sum={s: _number(data["probability_sum"][s]) for s in SIDES},
                delta_bins=_counts(data["delta_bins"], len(DELTA_BOUNDS)),
                delta_sum=_number(data["delta_sum"]),
                delta_max=_number(data["delta_max"]),
                same_top=_count(data["same_top"]),
                overlap=_counts(data["overlap"], 4),
                latency={s: _counts(data["latency"][s], len(LATENCY_BOUNDS) + 1) for s in SIDES},
                latency_sum={s: _number(data["latency_sum"][s]) for s in SIDES},
                sample=[_number(v) for v in data["sample"][:SAMPLE_SIZE]],
                largest=[_disagreement(item) for item in data["largest"][:LARGEST]],
            )
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            raise ValueError(f"not a shadow tally: {exc!r}") from None
        heapq.heapify(tally.largest)
        return tally

    @classmethod
    def merged(cls, tallies: Iterable[PairTally]) -> PairTally:
        """The sum of several workers' tallies of the same pair."""
        parts = list(tallies)
        total = cls()
        for part in parts:
            for o in OUTCOMES:
                total.outcomes[o] += part.outcomes[o]
            for i in range(3):
                for j in range(3):
                    total.confusion[i][j] += part.confusion[i][j]
            for side in SIDES:
                _add_into(total.bins[side], part.bins[side])
                _add_into(total.latency[side], part.latency[side])
                total.probability_sum[side] += part.probability_sum[side]
                total.latency_sum[side] += part.latency_sum[side]
            _add_into(total.delta_bins, part.delta_bins)
            _add_into(total.overlap, part.overlap)
            total.delta_sum += part.delta_sum
            total.delta_max = max(total.delta_max, part.delta_max)
            total.same_top += part.same_top
        total.sample = _merge_samples(parts)
        total.largest = heapq.nlargest(LARGEST, (d for part in parts for d in part.largest))
        heapq.heapify(total.largest)
        return total


def _bin(bounds: Sequence[float], value: float) -> int:
    # "le" bins; anything past the last bound (which callers keep in range) joins the last bin.
    return min(bisect.bisect_left(bounds, value), len(bounds) - 1)


def _add_into(total: list[int], part: Sequence[int]) -> None:
    for i, value in enumerate(part):
        total[i] += value


def _merge_samples(parts: Sequence[PairTally]) -> list[float]:
    """Every worker's sample while they fit; beyond, each contributes by its share of rows."""
    if sum(len(p.sample) for p in parts) <= SAMPLE_SIZE:
        return [v for p in parts for v in p.sample]
    rows = sum(p.rows for p in parts) or 1
    merged: list[float] = []
    for part in parts:
        take = min(len(part.sample), round(SAMPLE_SIZE * part.rows / rows))
        merged.extend(random.sample(part.sample, take))
    return merged[:SAMPLE_SIZE]


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"{value!r} is not a count")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(f"{value!r} is not a finite number")
    return float(value)


def _list(value: Any, length: int) -> list[Any]:
    if not isinstance(value, list) or len(value) != length:
        raise TypeError(f"expected a list of {length}")
    return value


def _counts(value: Any, length: int) -> list[int]:
    return [_count(v) for v in _list(value, length)]


def _disagreement(item: Any) -> Disagreement:
    delta, request_id, row, p_primary, p_shadow, t_primary, t_shadow = _list(item, 7)
    if not isinstance(request_id, str) or t_primary not in TIER_INDEX or t_shadow not in TIER_INDEX:
        raise TypeError("malformed disagreement")
    return Disagreement(
        _number(delta),
        request_id,
        _count(row),
        _number(p_primary),
        _number(p_shadow),
        t_primary,
        t_shadow,
    )
