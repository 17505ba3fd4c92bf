"""Population stability index: how far one distribution over fixed bins moved from another."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["PSI_FLOOR", "PSI_MAJOR_ABOVE", "PSI_STABLE_BELOW", "psi", "psi_reading"]

# A bin one side never filled would make PSI infinite (ln 0); its share is raised to this floor,
# the usual practice, so one empty bin reads as a large shift rather than a division by zero.
PSI_FLOOR = 1e-4
# PSI's customary reading.
PSI_STABLE_BELOW = 0.1
PSI_MAJOR_ABOVE = 0.25


def psi(
    expected: Sequence[float], actual: Sequence[float], floor: float = PSI_FLOOR
) -> float | None:
    """Population stability index of ``actual`` against ``expected`` (counts per bin).

    PSI = Σ (a_i - e_i) · ln(a_i / e_i) over the bins' shares, each share at least ``floor``.
    None while either side has no observation.
    """
    if len(expected) != len(actual):
        raise ValueError("both sides need the same bins")
    expected_total = sum(expected)
    actual_total = sum(actual)
    if expected_total <= 0 or actual_total <= 0:
        return None
    value = 0.0
    for e_count, a_count in zip(expected, actual, strict=True):
        e = max(e_count / expected_total, floor)
        a = max(a_count / actual_total, floor)
        value += (a - e) * math.log(a / e)
    return value


def psi_reading(value: float | None) -> str:
    if value is None:
        return "no data"
    if value < PSI_STABLE_BELOW:
        return "stable"
    if value <= PSI_MAJOR_ABOVE:
        return "moderate shift"
    return "major shift"
