"""The quality gate's check: the gateway's GET /quality comparison (JSON) back into a
``Comparison``, and the gate's decision on it (``outcomes.quality.gate.decide``). Pure: the
report is fetched by ``rollout/sources/quality.py``.

The comparison's design is chosen once per rollout (``Plan.quality_design``): asking the paired
one at some checks and the unpaired one at others would spend the gate's alpha twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from outcomes.quality.compare import Comparison, Difference
from outcomes.quality.gate import GateResult, decide
from routing_config.rollout_plan import RolloutQuality

__all__ = ["comparison_of", "quality_gate"]


def _difference(numbers: Any) -> Difference | None:
    if not isinstance(numbers, Mapping):
        return None
    estimate, error = numbers.get("estimate"), numbers.get("standard_error")
    if not isinstance(estimate, int | float) or not isinstance(error, int | float):
        return None
    return Difference(float(estimate), float(error) ** 2)


def comparison_of(report: Mapping[str, Any], design: str) -> Comparison | None:
    """The ``design`` ("paired" or "unpaired") comparison of a /quality report, None when the
    report has none yet (no labelled predictions of both versions)."""
    found = (report.get("comparison") or {}).get(design)
    if not isinstance(found, Mapping):
        return None
    correlation = found.get("auc_correlation")
    return Comparison(
        design="paired" if design == "paired" else "unpaired",
        candidate=str(found["candidate"]),
        stable=str(found["stable"]),
        n_candidate=int(found["candidate_outcomes"]),
        n_stable=int(found["stable_outcomes"]),
        churned_candidate=int(found["candidate_churned"]),
        churned_stable=int(found["stable_churned"]),
        auc=_difference(found.get("auc_difference")),
        brier=_difference(found.get("brier_difference")),
        auc_correlation=float(correlation) if isinstance(correlation, int | float) else None,
    )


def quality_gate(report: Mapping[str, Any], design: str, spec: RolloutQuality) -> GateResult:
    """The gate's decision on a /quality report: WAIT, PASS, FAIL or INCONCLUSIVE."""
    return decide(
        comparison_of(report, design),
        min_outcomes=spec.min_outcomes,
        max_auc_drop=float(spec.max_auc_drop),
        alpha=spec.alpha,
    )
