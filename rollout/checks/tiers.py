"""The tier mix: the largest change of one risk tier's share between candidate and stable, and
the risk tiers' probability bins."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rollout import sequential as seq
from rollout.checks.base import Array, Assessment, Counts, share_of
from rollout.verdict import FAIL, INCONCLUSIVE, PASS
from vocabulary.buckets import PROBABILITY_BOUNDS, TIER_EDGE_BINS

__all__ = ["TIER_BINS", "assess_tiers", "tier_mix"]

# The probability bins of each risk tier: low < 0.3 <= medium < 0.6 <= high.
TIER_BINS = tuple(
    tuple(range(low, high))
    for low, high in zip(
        (0, *TIER_EDGE_BINS), (*TIER_EDGE_BINS, len(PROBABILITY_BOUNDS)), strict=True
    )
)


def _tier_counts(bins: Array) -> Array:
    return np.stack([bins[:, list(tier)].sum(axis=1) for tier in TIER_BINS], axis=1)


def assess_tiers(
    c: Counts, s: Counts, threshold: float, bar: float, min_count: float = 0
) -> Assessment:
    mc, ms = _tier_counts(c.probability), _tier_counts(s.probability)
    nc, ns = mc.sum(axis=1, keepdims=True), ms.sum(axis=1, keepdims=True)
    pc, ps = share_of(mc, nc), share_of(ms, ns)
    # With three tiers, the total variation distance is the largest single tier's change.
    change = np.abs(pc - ps)
    shift = change.max(axis=1)
    vc, vs = (mc + 0.5) / (nc + 1), (ms + 0.5) / (ns + 1)
    variance = vc * (1 - vc) / np.maximum(nc, 1) + vs * (1 - vs) / np.maximum(ns, 1)
    tier_bar = bar + math.log(len(TIER_BINS))  # Bonferroni over the tiers
    radius = seq.normal_mixture_radius(variance, tier_bar)
    lower = np.maximum(change - radius, 0).max(axis=1)
    upper = (change + radius).max(axis=1)
    empty = (nc[:, 0] == 0) & (ns[:, 0] == 0)
    # The normal mixture is asymptotic (a plug-in variance): it fails nothing on fewer than
    # ``min_count`` customers a side, where the simulator found it could (2 of 2,000 A/A
    # rollouts at 10 requests a second, on a few dozen customers).
    proven = (lower > threshold) & (nc[:, 0] >= min_count) & (ns[:, 0] >= min_count)
    status = np.where(
        proven, FAIL, np.where((shift > threshold) | empty, INCONCLUSIVE, PASS)
    ).astype(np.int8)
    return Assessment(
        "tier_mix",
        status,
        shift,
        (upper <= threshold) & ~empty,
        np.where(proven, tier_bar, -np.inf),
        np.full(shift.shape, tier_bar),
        threshold,
        {
            "lower": lower,
            "upper": upper,
            "empty": empty.astype(float),
            **{f"c{i}": pc[:, i] for i in range(3)},
            **{f"s{i}": ps[:, i] for i in range(3)},
            "nc": nc[:, 0],
            "ns": ns[:, 0],
        },  # fmt: skip
    )


def tier_mix(bins: Sequence[float]) -> tuple[float, ...]:
    """Customers per risk tier, from the ten probability bins."""
    return tuple(sum(bins[i] for i in tier) for tier in TIER_BINS)
