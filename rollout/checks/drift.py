"""Prediction drift: PSI of the candidate's churn-probability bins against stable's, the test
that the two distributions differ, and PSI's upper confidence bound."""

from __future__ import annotations

import math

import numpy as np

from measures.psi import PSI_FLOOR
from rollout import sequential as seq
from rollout.checks.base import Array, Assessment, Counts, share_of
from rollout.verdict import FAIL, INCONCLUSIVE, PASS

__all__ = ["assess_drift"]


def assess_drift(
    c: Counts, s: Counts, threshold: float, bar: float, decide: bool = True
) -> Assessment:
    value = seq.psi(s.probability, c.probability, PSI_FLOOR)
    evidence = seq.log_e_homogeneity(c.probability, s.probability)
    over = np.nan_to_num(value) > threshold
    empty = (c.probability.sum(axis=1) == 0) & (s.probability.sum(axis=1) == 0)
    status = np.where(
        over & (evidence >= bar), FAIL, np.where(over | empty, INCONCLUSIVE, PASS)
    ).astype(np.int8)
    upper = _psi_upper(c.probability, s.probability, bar) if decide else np.full_like(value, np.inf)
    return Assessment(
        "psi",
        status,
        np.nan_to_num(value),
        (upper <= threshold) & ~empty,
        evidence,
        np.full(value.shape, bar),
        threshold,
        {
            "nc": c.probability.sum(axis=1),
            "ns": s.probability.sum(axis=1),
            "upper": upper,
            "empty": empty.astype(float),
        },  # fmt: skip
    )


def _share_bounds(bins: Array, bar: float) -> tuple[Array, Array]:
    """Each bin's share, within a confidence sequence (normal mixture, plug-in variance)."""
    n = bins.sum(axis=1, keepdims=True)
    share = share_of(bins, n)
    smoothed = (bins + 0.5) / (n + 1)
    radius = seq.normal_mixture_radius(smoothed * (1 - smoothed) / np.maximum(n, 1), bar)
    return np.clip(share - radius, PSI_FLOOR, 1), np.clip(share + radius, PSI_FLOOR, 1)


def _psi_upper(c: Array, s: Array, bar: float) -> Array:
    """An upper confidence bound of PSI: each bin's term (c - s) ln(c / s) is convex, so its
    largest value over the box of the two shares' bounds is at a corner (Bonferroni over the
    bins and both sides; dropping the simplex constraint only raises it)."""
    step = bar + math.log(2 * c.shape[1])
    lc, uc = _share_bounds(c, step)
    ls, us = _share_bounds(s, step)

    def term(a: Array, b: Array) -> Array:
        return (a - b) * np.log(a / b)

    corners = np.maximum(
        np.maximum(term(lc, ls), term(lc, us)), np.maximum(term(uc, ls), term(uc, us))
    )
    return np.asarray(corners.sum(axis=1), dtype=float)
