"""How a shadow's answer differs from the answer the client got. Pure functions, no I/O.

This is the one place the gateway reads a prediction body, and only for mirrored requests: the
client's answer passes through as bytes, and is parsed here afterwards, off the client's path.
Both sides are read by protocols/scores.py, each in its own protocol (a V2 client's answer
against a shadow that speaks V2 only, say); reasons are compared only when both sides give them.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from protocols.scores import MODEL_API, BadScores, Score, ScoreSource, read_scores
from vocabulary.buckets import PROBABILITY_BOUNDS

# The score rows of an answer, read by protocols/scores.py (the one reader of scores).
Row = Score
BadAnswer = BadScores


def parse_rows(
    body: bytes, source: ScoreSource = MODEL_API, header_length: int | None = None
) -> list[Row]:
    """The rows of an answer: a /predict or /predict/batch answer by default, a V2 answer
    (JSON or binary) when ``source`` says so."""
    return read_scores(body, source, header_length)


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

    @property
    def explained(self) -> bool:
        """Both answers gave reasons: only then are their reasons compared."""
        return bool(self.primary.reasons) and bool(self.shadow.reasons)


def compare_rows(primary: Sequence[Row], shadow: Sequence[Row]) -> list[RowComparison]:
    """Row by row: the same customers in the same order on both sides."""
    if len(primary) != len(shadow):
        raise BadAnswer(f"the client got {len(primary)} rows and the shadow {len(shadow)}")
    return [compare_row(p, s) for p, s in zip(primary, shadow, strict=True)]


def compare_row(primary: Row, shadow: Row) -> RowComparison:
    ours, theirs = primary.reasons or (), shadow.reasons or ()
    return RowComparison(
        primary=primary,
        shadow=shadow,
        abs_delta=abs(shadow.probability - primary.probability),
        same_top=bool(ours and theirs) and ours[0] == theirs[0],
        overlap=len(set(ours) & set(theirs)),
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
