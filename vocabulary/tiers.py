"""Risk tiers: low < 0.3 <= medium < 0.6 <= high (the model API's contract)."""

from __future__ import annotations

__all__ = ["RISK_TIERS", "TIER_EDGES", "TIER_INDEX", "tier_of"]

RISK_TIERS = ("low", "medium", "high")
# Lower edges of medium and high: a probability exactly on an edge is in the higher tier.
TIER_EDGES = (0.3, 0.6)
TIER_INDEX = {tier: i for i, tier in enumerate(RISK_TIERS)}


def tier_of(probability: float) -> str:
    """The risk tier of one churn probability."""
    return RISK_TIERS[(probability >= TIER_EDGES[0]) + (probability >= TIER_EDGES[1])]
