"""How a shadow's answer differs from the answer the client got. Pure functions, no I/O.

This is the one place the gateway reads a prediction body, and only for mirrored requests: the
client's answer passes through as bytes, and is parsed here afterwards, off the client's path.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from vocabulary.buckets import PROBABILITY_BOUNDS
from vocabulary.tiers import RISK_TIERS, TIER_INDEX

TOP_REASONS = 3


class BadAnswer(ValueError):
    """A body that is not a prediction answer (or rows that cannot be paired)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One scored customer: what the comparison needs of a ChurnPredictionResponse."""

    probability: float
    tier: str
    reasons: tuple[str, ...]  # top reasons' feature names, most important first


@dataclass(frozen=True, slots=True)
class RowComparison:
    primary: Row
    shadow: Row
    abs_delta: float  # |p_shadow - p_primary|
    same_top: bool  # the same feature leads both explanations
    overlap: int  # features the two top-3 sets share, 0..3

    @property
    def same_tier(self) -> bool:
        return self.primary.tier == self.shadow.tier


def parse_rows(body: bytes) -> list[Row]:
    """The rows of a /predict answer (one) or a /predict/batch answer (its predictions)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadAnswer(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadAnswer("not a JSON object")
    if "predictions" in document:
        items = document["predictions"]
        if not isinstance(items, list):
            raise BadAnswer("predictions is not a list")
        return [_row(item, f"predictions[{i}]") for i, item in enumerate(items)]
    return [_row(document, "answer")]


def _row(item: object, where: str) -> Row:
    if not isinstance(item, dict):
        raise BadAnswer(f"{where}: not an object")
    probability = item.get("churn_probability")
    if isinstance(probability, bool) or not isinstance(probability, int | float):
        raise BadAnswer(f"{where}.churn_probability: not a number")
    if not 0.0 <= probability <= 1.0:
        raise BadAnswer(f"{where}.churn_probability: {probability} is outside 0..1")
    tier = item.get("risk_tier")
    if tier not in TIER_INDEX:
        raise BadAnswer(f"{where}.risk_tier: {tier!r} is not one of {', '.join(RISK_TIERS)}")
    reasons = item.get("top_reasons")
    if not isinstance(reasons, list):
        raise BadAnswer(f"{where}.top_reasons: not a list")
    features = []
    for reason in reasons[:TOP_REASONS]:
        feature = reason.get("feature") if isinstance(reason, dict) else None
        if not isinstance(feature, str):
            raise BadAnswer(f"{where}.top_reasons: an entry has no feature name")
        features.append(feature)
    return Row(float(probability), tier, tuple(features))


def compare_rows(primary: Sequence[Row], shadow: Sequence[Row]) -> list[RowComparison]:
    """Row by row: the same customers in the same order on both sides."""
    if len(primary) != len(shadow):
        raise BadAnswer(f"the client got {len(primary)} rows and the shadow {len(shadow)}")
    return [compare_row(p, s) for p, s in zip(primary, shadow, strict=True)]


def compare_row(primary: Row, shadow: Row) -> RowComparison:
    return RowComparison(
        primary=primary,
        shadow=shadow,
        abs_delta=abs(shadow.probability - primary.probability),
        same_top=bool(primary.reasons and shadow.reasons)
        and primary.reasons[0] == shadow.reasons[0],
        overlap=len(set(primary.reasons) & set(shadow.reasons)),
    )


def probability_bin(probability: float) -> int:
    """Index of the bin of PROBABILITY_BOUNDS that holds ``probability`` (0..1)."""
    return min(bisect.bisect_left(PROBABILITY_BOUNDS, probability), len(PROBABILITY_BOUNDS) - 1)


def quantile(sorted_values: Sequence[float], q: float) -> float | None:
    """The q-quantile by linear interpolation between order statistics (numpy's default)."""
    n = len(sorted_values)
    if n == 0:
        return None
    position = q * (n - 1)
    low = math.floor(position)
    high = min(low + 1, n - 1)
    fraction = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction
