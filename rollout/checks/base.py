"""What every check takes and gives: a batch of counts (``Counts``), the window's share of the
rollout's significance (``Budget``), one check's findings over the batch (``Assessment``), and
the array types and shares they are made of."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from rollout.counts import VersionCounts
from routing_config.rollout_plan import RolloutSpec

__all__ = ["Array", "Assessment", "Budget", "Codes", "Counts", "Flags", "share_of"]

Array = npt.NDArray[np.float64]
Flags = npt.NDArray[np.bool_]
Codes = npt.NDArray[np.int8]


@dataclass(frozen=True, slots=True)
class Budget:
    """The rollout's ``significance`` spread over the windows it judges (the shadow bake, then
    each step), front-loaded: each window has a third of the share of the one before,
    normalised to sum to ``significance`` (with four steps 27/40, 9/40, 3/40, 1/40). The first
    steps see the fewest samples, where a larger alpha stops a bad candidate sooner; later
    steps see many times more, where evidence grows fast and a smaller alpha costs little (it
    enters as log(1/alpha))."""

    alpha: float  # this window's share

    @classmethod
    def of(cls, spec: RolloutSpec, step: int = 0) -> Budget:
        steps = len(spec.steps) if spec.steps is not None else 1
        bake = 1 if spec.shadow_bake is not None else 0
        windows = steps + bake
        window = min(max(step + bake, 0), windows - 1)
        share = 3.0 ** (windows - 1 - window) * 2 / (3.0**windows - 1)
        return cls(spec.thresholds.significance * share)

    def log_bar(self, weight: float, total: float) -> float:
        """log(1/alpha) of a test with ``weight`` of the window's ``total``."""
        return math.log(total / (self.alpha * weight))


@dataclass(frozen=True, slots=True)
class Counts:
    """One version's counts over a window, for a batch of rows (rollouts) at once."""

    requests: Array
    errors: Array
    saved: Array
    latency: Array  # (rows, buckets + 1): cumulative, the last is +Inf
    probability: Array  # (rows, bins)

    @classmethod
    def of(cls, *counts: VersionCounts) -> Counts:
        return cls(
            np.array([c.requests for c in counts], dtype=float),
            np.array([c.errors for c in counts], dtype=float),
            np.array([c.saved_by_fallback for c in counts], dtype=float),
            np.array([c.latency for c in counts], dtype=float),
            # The replicas' histogram, or for a V2 server's version the gateway's count.
            np.array([c.judged_probability for c in counts], dtype=float),
        )

    def rows(self, which: npt.NDArray[np.bool_] | npt.NDArray[np.int64]) -> Counts:
        return Counts(
            self.requests[which],
            self.errors[which],
            self.saved[which],
            self.latency[which],
            self.probability[which],
        )


@dataclass(slots=True)
class Assessment:
    """One check over a batch: its status, value, whether it is provably within its
    allowance (for the horizon), and the numbers its sentence is made of."""

    name: str
    status: Codes
    value: Array
    within: Flags
    evidence: Array  # log e-value of the test nearest to failing
    log_bar: Array
    threshold: float | None
    numbers: dict[str, Array] = field(default_factory=dict)


def share_of(x: Array, n: Array) -> Array:
    return np.where(n > 0, x / np.maximum(n, 1e-300), 0.0)
