"""The gateway's latency buckets, and quantiles from bucket counts as Prometheus computes them.

One set of bounds for every latency histogram the gateway exports (client requests, both sides
of a shadow comparison), and one ``histogram_quantile`` for every reader of bucket counts: the
status page's /stats, the shadow report, and the rollout controller's p99. A module of its own
with no imports from the gateway, so any of them can use it without an import cycle.
"""

from __future__ import annotations

from collections.abc import Sequence

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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
