"""Histogram bounds shared by everyone who writes or reads the histograms.

Fixed, so counts from any number of gateways and replicas add up, and a reader (the status
page, the shadow report, the rollout judge) can recompute quantiles and PSI from the sums.
"""

from __future__ import annotations

from vocabulary.tiers import TIER_EDGES

__all__ = [
    "BATCH_SIZE_BUCKETS",
    "GATEWAY_LATENCY_BUCKETS",
    "MODEL_LATENCY_BUCKETS",
    "PROBABILITY_BIN_LABELS",
    "PROBABILITY_BOUNDS",
    "TIER_EDGE_BINS",
]

# Seconds, every latency histogram the gateway exports (client requests, both sides of a
# shadow comparison).
GATEWAY_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# Seconds, a replica's time to predict and explain one request (finer at the low end: a
# prediction takes well under a millisecond).
MODEL_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)

# Upper edges of the churn-probability bins (Prometheus "le" semantics: a bound is inclusive),
# the last ending at 1.0: the replicas' probability histogram and the shadow comparison's bins.
PROBABILITY_BOUNDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
PROBABILITY_BIN_LABELS = tuple(
    f"{low:.1f}-{high:.1f}"
    for low, high in zip((0.0, *PROBABILITY_BOUNDS[:-1]), PROBABILITY_BOUNDS, strict=True)
)
# How many bins lie below each tier edge, so a tier mix can be read off the bins. Inclusive
# upper bounds put a probability exactly on an edge in the tier below it: the bins can only
# approximate the model's own tiers there, which no real probability hits exactly.
TIER_EDGE_BINS = tuple(PROBABILITY_BOUNDS.index(edge) + 1 for edge in TIER_EDGES)
