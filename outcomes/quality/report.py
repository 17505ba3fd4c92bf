"""The quality report (``GET /quality``, ``streamflow quality``, the status page) from plain
arrays. Pure: the store selects the window's labelled predictions, this turns them into JSON.

What goes in (``QualityInput``): per version, every labelled prediction it made in the window
(``VersionRows``: probability, outcome, and how the prediction was assigned, one of
``ASSIGNMENTS``), and the shadow rows joined with the client's answer to the same request
(``ShadowPairs``). What comes out (``build_report``), per version: labelled predictions (by
assignment), observed churn rate, ROC AUC with its DeLong interval, Brier score, log loss,
calibration (ECE and the reliability diagram's points), observed churn per risk tier; and the
candidate against stable:

- unpaired, over the canary split: only ``weighted`` and ``sticky`` predictions, the
  assignments that were randomised with respect to the customer. ``pinned`` (the client chose),
  ``fallback`` (stable answered because the candidate failed: those customers are not a random
  share), ``blue_green`` (everyone got the live colour: nothing to compare at the same time) and
  ``shadow`` (never served; they belong to the paired comparison) are left out, and the report
  counts them per version;
- paired, from shadow rows of the candidate joined with stable's answer to the same request:
  the same customers, one outcome, both scores. Any assignment of the client's answer counts
  here, fallback included: pairing, not randomisation, is what makes it fair.

Each comparison also projects how many outcomes its AUC interval needs to reach a half-width of
``PROJECTED_HALF_WIDTH``, from its current variance (variance falls as 1 / outcomes).
Vectorised throughout: ``python -m bench.quality`` times a million labelled predictions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from outcomes.quality.compare import Comparison, Difference, compare_paired, compare_unpaired
from outcomes.quality.metrics import Auc, VersionQuality, check_labelled, version_quality, z_of

__all__ = [
    "ASSIGNMENTS",
    "EXCLUDED",
    "PROJECTED_HALF_WIDTH",
    "RANDOMISED",
    "QualityInput",
    "ShadowPairs",
    "VersionRows",
    "assignment_codes",
    "build_report",
    "paired_of",
    "projected_outcomes",
    "unpaired_of",
]

# How a prediction was assigned to its version: X-Route-Reason's values, and "shadow" for a
# compared copy. VersionRows.assignment holds indexes into this tuple.
ASSIGNMENTS = ("weighted", "sticky", "pinned", "blue_green", "fallback", "shadow")
RANDOMISED = ("weighted", "sticky")
EXCLUDED = tuple(a for a in ASSIGNMENTS if a not in RANDOMISED)
PROJECTED_HALF_WIDTH = 0.01

_RANDOMISED_CODES = np.array([ASSIGNMENTS.index(a) for a in RANDOMISED], dtype=np.int8)

Int8Array = npt.NDArray[np.int8]


def assignment_codes(names: Sequence[str] | npt.ArrayLike) -> Int8Array:
    """Assignment names ("weighted", ...) as indexes into ASSIGNMENTS; unknown names raise."""
    values = np.asarray(names, dtype=object).reshape(-1)
    if values.size == 0:
        return np.zeros(0, dtype=np.int8)
    unique, inverse = np.unique(values.astype(str), return_inverse=True)
    unknown = [str(u) for u in unique if u not in ASSIGNMENTS]
    if unknown:
        raise ValueError(f"unknown assignment {unknown[0]!r}, expected one of {ASSIGNMENTS}")
    lookup = np.array([ASSIGNMENTS.index(str(u)) for u in unique], dtype=np.int8)
    return lookup[inverse.reshape(-1)]


@dataclass(frozen=True)
class VersionRows:
    """One version's labelled predictions in the window: ``probability[i]`` was given to a
    customer whose outcome is ``churned[i]``, assigned as ``ASSIGNMENTS[assignment[i]]``
    (``assignment_codes`` turns names into these)."""

    version: str
    probability: npt.NDArray[np.float64]
    churned: npt.NDArray[np.bool_]
    assignment: Int8Array

    def __post_init__(self) -> None:
        p, y = check_labelled(self.probability, self.churned)
        a = np.asarray(self.assignment, dtype=np.int8).reshape(-1)
        if a.shape != p.shape:
            raise ValueError(f"{self.version}: {p.size} probabilities but {a.size} assignments")
        if a.size and (a.min() < 0 or a.max() >= len(ASSIGNMENTS)):
            raise ValueError(f"{self.version}: assignment codes must index ASSIGNMENTS")
        object.__setattr__(self, "probability", p)
        object.__setattr__(self, "churned", y)
        object.__setattr__(self, "assignment", a)


@dataclass(frozen=True)
class ShadowPairs:
    """Shadow predictions joined with the client's answer to the same request (row i of each
    array is one request, one outcome): ``shadow_version`` scored the copy, ``served_version``
    answered the client."""

    shadow_version: str
    served_version: str
    shadow_probability: npt.NDArray[np.float64]
    served_probability: npt.NDArray[np.float64]
    churned: npt.NDArray[np.bool_]

    def __post_init__(self) -> None:
        shadow, y = check_labelled(self.shadow_probability, self.churned)
        served, _ = check_labelled(self.served_probability, y)
        object.__setattr__(self, "shadow_probability", shadow)
        object.__setattr__(self, "served_probability", served)
        object.__setattr__(self, "churned", y)


@dataclass(frozen=True)
class QualityInput:
    """Everything one report needs. ``candidate`` None: per-version numbers only.
    ``window`` is echoed into the report as given (e.g. {"since": ..., "until": ...})."""

    stable: str
    candidate: str | None
    versions: tuple[VersionRows, ...]
    pairs: tuple[ShadowPairs, ...] = ()
    window: dict[str, Any] = field(default_factory=dict)


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _auc_json(auc: Auc | None, level: float) -> dict[str, Any] | None:
    if auc is None:
        return None
    low, high = auc.interval(level)
    return {"value": auc.value, "interval": [low, high], "standard_error": auc.standard_error}


def _quality_json(q: VersionQuality, counts: dict[str, int], level: float) -> dict[str, Any]:
    cal = q.calibration
    return {
        "labelled": q.labelled,
        "churned": q.churned,
        "churn_rate": q.churn_rate,
        "by_assignment": counts,
        "auc": _auc_json(q.auc, level),
        "brier": _number(q.brier),
        "log_loss": _number(q.log_loss),
        "calibration": None
        if cal is None
        else {
            "expected_calibration_error": cal.expected_calibration_error,
            "bins": [
                {
                    "bin": b.label,
                    "lower": b.lower,
                    "upper": b.upper,
                    "count": b.count,
                    "mean_probability": b.mean_probability,
                    "observed_rate": b.observed_rate,
                }
                for b in cal.bins
            ],
        },
        "tiers": {
            t.tier: {
                "count": t.count,
                "churned": t.churned,
                "observed_rate": t.observed_rate,
                "mean_probability": t.mean_probability,
            }
            for t in q.tiers
        },
    }


def _difference_json(d: Difference | None, level: float) -> dict[str, Any] | None:
    if d is None:
        return None
    low, high = d.interval(level)
    return {"estimate": d.estimate, "interval": [low, high], "standard_error": d.standard_error}


def projected_outcomes(c: Comparison, half_width: float, level: float) -> int | None:
    """Outcomes (both sides together, in today's proportions) for the AUC difference's
    interval to shrink to ``half_width``: variance falls as 1 / outcomes."""
    if c.auc is None or c.auc.variance <= 0:
        return None
    now = c.n_candidate + (c.n_stable if c.design == "unpaired" else 0)
    return math.ceil(now * c.auc.variance * (z_of(level) / half_width) ** 2)


def _comparison_json(c: Comparison, level: float) -> dict[str, Any]:
    return {
        "design": c.design,
        "candidate": c.candidate,
        "stable": c.stable,
        "candidate_outcomes": c.n_candidate,
        "stable_outcomes": c.n_stable,
        "candidate_churned": c.churned_candidate,
        "stable_churned": c.churned_stable,
        "auc_difference": _difference_json(c.auc, level),
        "brier_difference": _difference_json(c.brier, level),
        "auc_correlation": c.auc_correlation,
        "projected": {
            "interval_half_width": PROJECTED_HALF_WIDTH,
            "outcomes": projected_outcomes(c, PROJECTED_HALF_WIDTH, level),
        },
    }


def _counts(rows: VersionRows) -> dict[str, int]:
    counts = np.bincount(rows.assignment, minlength=len(ASSIGNMENTS))
    return {name: int(counts[i]) for i, name in enumerate(ASSIGNMENTS)}


def unpaired_of(data: QualityInput) -> Comparison | None:
    """The canary split's comparison: randomised assignments only."""
    by_version = {rows.version: rows for rows in data.versions}
    if data.candidate is None:
        return None
    cand, stab = by_version.get(data.candidate), by_version.get(data.stable)
    if cand is None or stab is None:
        return None
    keep_c = np.isin(cand.assignment, _RANDOMISED_CODES)
    keep_s = np.isin(stab.assignment, _RANDOMISED_CODES)
    return compare_unpaired(
        cand.probability[keep_c],
        cand.churned[keep_c],
        stab.probability[keep_s],
        stab.churned[keep_s],
        candidate=cand.version,
        stable=stab.version,
    )


def paired_of(data: QualityInput) -> Comparison | None:
    """Shadow rows of the candidate against stable's answers to the same requests."""
    if data.candidate is None:
        return None
    matching = [
        p
        for p in data.pairs
        if p.shadow_version == data.candidate and p.served_version == data.stable
    ]
    if not matching:
        return None
    return compare_paired(
        np.concatenate([p.shadow_probability for p in matching]),
        np.concatenate([p.served_probability for p in matching]),
        np.concatenate([p.churned for p in matching]),
        candidate=data.candidate,
        stable=data.stable,
    )


def build_report(data: QualityInput, level: float = 0.95) -> dict[str, Any]:
    """The report as JSON-ready dicts and lists (no NaN: undefined numbers are None)."""
    versions = {
        rows.version: _quality_json(
            version_quality(rows.probability, rows.churned), _counts(rows), level
        )
        for rows in data.versions
    }
    comparison: dict[str, Any] = {"unpaired": None, "paired": None}
    unpaired = unpaired_of(data)
    if unpaired is not None:
        comparison["unpaired"] = {
            **_comparison_json(unpaired, level),
            "assignments": list(RANDOMISED),
            "excluded": {
                version: {a: versions[version]["by_assignment"][a] for a in EXCLUDED}
                for version in (unpaired.candidate, unpaired.stable)
            },
        }
    paired = paired_of(data)
    if paired is not None:
        comparison["paired"] = _comparison_json(paired, level)
    if data.candidate is not None:
        comparison["unmatched_pairs"] = sum(
            p.churned.size
            for p in data.pairs
            if not (p.shadow_version == data.candidate and p.served_version == data.stable)
        )
    return {
        "stable": data.stable,
        "candidate": data.candidate,
        "window": dict(data.window),
        "level": level,
        "versions": versions,
        "comparison": comparison,
    }
