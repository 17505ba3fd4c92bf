"""Quantiles from histogram bucket counts, as Prometheus's ``histogram_quantile`` computes them.

One function for every reader of bucket counts: the status page's /stats, the shadow report,
and the rollout controller's p99, so the page and the judge agree with a PromQL query.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["histogram_quantile"]


def histogram_quantile(
    q: float, bounds: Sequence[float], cumulative: Sequence[float]
) -> float | None:
    """The q-quantile of a cumulative histogram: ``cumulative[i]`` observations at most
    ``bounds[i]``, then one more count for +Inf (the total). Linear interpolation inside the
    bucket the rank falls in (the first bucket starts at 0); in +Inf, the highest finite bound.
    None with no observation."""
    total = cumulative[-1] if cumulative else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, cumulative, strict=False):  # +Inf's count is not paired
        if count >= rank and count > below:
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower
