"""How good one version's churn probabilities were, once the real outcomes are known. Pure.

Every function takes numpy arrays of equal length: the churn probability a version gave each
customer and whether that customer churned (bool). Each is vectorised, so a million labelled
predictions take a fraction of a second.

- ROC AUC: the chance that a churner got a higher probability than a customer who stayed (ties
  count a half), with its variance by DeLong, DeLong and Clarke-Pearson (Biometrics, 1988),
  computed with the midrank algorithm of Sun and Xu ("Fast implementation of DeLong's algorithm
  for comparing the areas under correlated receiver operating characteristic curves", IEEE
  Signal Processing Letters, 2014): three sorts per model instead of every churner against
  every stayer, O(n log n). ``delong`` takes several models' scores of the same customers at
  once and returns the covariance of their AUCs, which the paired comparison needs.
- Brier score: the mean squared difference between probability and outcome (0 is perfect; a
  constant guess of the base rate r scores r (1 - r)).
- Log loss: the mean of -log of the probability given to what happened, each probability kept
  within [eps, 1 - eps] (eps the float64 machine epsilon) as scikit-learn clips it, so one
  confident miss costs about 36 nats instead of infinity.
- Calibration: the expected calibration error over fixed bins (the shared probability bins,
  upper bounds inclusive as in Prometheus and scikit-learn's ``calibration_curve``): the
  customer-weighted mean gap between each bin's mean probability and its observed churn rate,
  and those points themselves, the reliability diagram. Fixed bins, not quantile bins, so two
  versions and two windows are read on the same grid.
- Observed churn per risk tier (low < 0.3 <= medium < 0.6 <= high, an edge in the higher tier):
  is "high" really high?
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from vocabulary.buckets import PROBABILITY_BIN_LABELS, PROBABILITY_BOUNDS
from vocabulary.tiers import RISK_TIERS, TIER_EDGES

__all__ = [
    "enough_for_auc",
    "Auc",
    "CalibrationBin",
    "Calibration",
    "TierRate",
    "VersionQuality",
    "brier_score",
    "calibration",
    "check_labelled",
    "delong",
    "log_loss",
    "midranks",
    "roc_auc",
    "squared_errors",
    "tier_rates",
    "version_quality",
    "z_of",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

EPS = float(np.finfo(np.float64).eps)


def z_of(level: float) -> float:
    """The two-sided normal quantile of a confidence level (1.96 for 0.95)."""
    return NormalDist().inv_cdf(0.5 + level / 2)


def check_labelled(
    probability: npt.ArrayLike, churned: npt.ArrayLike
) -> tuple[FloatArray, BoolArray]:
    """Both arrays as float64 and bool, of one length, probabilities finite and within [0, 1]."""
    p = np.asarray(probability, dtype=np.float64).reshape(-1)
    y_raw = np.asarray(churned).reshape(-1)
    if p.shape != y_raw.shape:
        raise ValueError(f"{p.size} probabilities but {y_raw.size} outcomes")
    if y_raw.dtype != np.bool_:
        if y_raw.size and not np.isin(y_raw, (0, 1)).all():
            raise ValueError("outcomes must be true/false (or 1/0)")
        y_raw = y_raw.astype(bool)
    if p.size and not (np.isfinite(p).all() and p.min() >= 0.0 and p.max() <= 1.0):
        raise ValueError("probabilities must be finite and within [0, 1]")
    return p, y_raw


def midranks(x: FloatArray) -> FloatArray:
    """1-based ranks of ``x``, tied values sharing the mean of their ranks. O(n log n)."""
    n = x.size
    order = np.argsort(x)
    ordered = x[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], n]
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def _components(
    score: FloatArray, churned: BoolArray, m: int, n: int
) -> tuple[FloatArray, FloatArray]:
    """DeLong's structural components of one model, V10 per churner and V01 per stayer, from
    one sort. Sun and Xu's identities, Tz_i - Tx_i = (stayers below X_i) + (stayers tied with
    X_i) / 2 and Tz_j - Ty_j = (churners below Y_j) + (churners tied with Y_j) / 2, are read off
    the tie groups of the sorted scores: one O(n log n) sort instead of three."""
    size = score.size
    order = np.argsort(score)
    ordered = score[order]
    label = churned[order]
    churners_upto = np.cumsum(label)  # churners among sorted positions 0..i
    new = np.empty(size, dtype=bool)  # the first position of each tie group
    new[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    # Per sorted position: a churner's share of stayers below it (ties a half), a stayer's
    # share of churners above it (ties a half); then back in the customers' order, so the
    # components of several models line up customer by customer.
    if new.all():  # no ties (continuous scores): no tie groups to look up
        churners_before: npt.NDArray[np.int64] = churners_upto - label
        value = np.where(
            label,
            (np.arange(size) - churners_before) / n,
            (m - churners_upto) / m,
        )
    else:
        starts = np.flatnonzero(new)
        group = np.cumsum(new) - 1
        churners_before = np.r_[0, churners_upto][starts]
        churners_in = np.diff(np.r_[churners_before, m])
        stayers_before = starts - churners_before
        stayers_in = np.diff(np.r_[starts, size]) - churners_in
        for_churner = (stayers_before + 0.5 * stayers_in) / n
        for_stayer = (m - churners_before - 0.5 * churners_in) / m
        value = np.where(label, for_churner[group], for_stayer[group])
    placed = np.empty(score.size, dtype=np.float64)
    placed[order] = value
    v10, v01 = placed[churned], placed[~churned]
    return v10, v01


def delong(scores: npt.ArrayLike, churned: BoolArray) -> tuple[FloatArray, FloatArray]:
    """AUCs of ``k`` models scoring the same customers (``scores`` of shape (k, n) or (n,)) and
    the (k, k) covariance of those AUCs by DeLong.

    With m churners X and n stayers Y, the structural components are, per churner,
    V10(X_i) = (share of stayers below X_i, ties a half) and, per stayer, V01(Y_j) = (share of
    churners above Y_j, ties a half); AUC is the mean of either, and
    Cov = S10 / m + S01 / n, S10 and S01 the sample covariances (ddof 1) of the components
    across models. Sun and Xu read the components off midranks: V10 = (Tz_i - Tx_i) / n and
    V01 = 1 - (Tz_j - Ty_j) / m, Tz the midranks among all, Tx among churners, Ty among
    stayers (``_components`` gets the same differences from a single sort). The components of
    churners keep the customers' order across models, which is what pairs them.
    Needs at least two churners and two stayers (a covariance needs two of each)."""
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    y = np.asarray(churned, dtype=bool)
    m = int(y.sum())
    n = y.size - m
    if m < 2 or n < 2:
        raise ValueError(f"DeLong needs two churners and two stayers, got {m} and {n}")
    k = s.shape[0]
    v10 = np.empty((k, m))
    v01 = np.empty((k, n))
    for r in range(k):
        v10[r], v01[r] = _components(s[r], y, m, n)
    aucs = v10.mean(axis=1)
    d10 = v10 - aucs[:, None]
    d01 = v01 - v01.mean(axis=1, keepdims=True)
    covariance = (d10 @ d10.T) / ((m - 1) * m) + (d01 @ d01.T) / ((n - 1) * n)
    return aucs, covariance


@dataclass(frozen=True)
class Auc:
    """ROC AUC with its DeLong variance."""

    value: float
    variance: float

    @property
    def standard_error(self) -> float:
        return float(np.sqrt(max(self.variance, 0.0)))

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """Normal interval by DeLong's variance, kept within [0, 1]."""
        half = z_of(level) * self.standard_error
        return max(self.value - half, 0.0), min(self.value + half, 1.0)


def enough_for_auc(churned: BoolArray) -> bool:
    """At least two churners and two stayers: DeLong's variance needs both."""
    m = int(churned.sum())
    return m >= 2 and churned.size - m >= 2


def roc_auc(probability: FloatArray, churned: BoolArray) -> Auc | None:
    """AUC with its DeLong variance; None with fewer than two churners or two stayers."""
    if not enough_for_auc(churned):
        return None
    aucs, covariance = delong(probability, churned)
    return Auc(float(aucs[0]), float(covariance[0, 0]))


def squared_errors(probability: FloatArray, churned: BoolArray) -> FloatArray:
    """(probability - outcome)^2 per customer: the Brier score is their mean."""
    return np.square(probability - churned)


def brier_score(probability: FloatArray, churned: BoolArray) -> float:
    return float(np.mean(squared_errors(probability, churned)))


def log_loss(probability: FloatArray, churned: BoolArray) -> float:
    """Mean -log(probability given to what happened), clipped to [eps, 1 - eps] as
    scikit-learn clips each column of [1 - p, p]."""
    given = np.where(churned, probability, 1.0 - probability)
    return float(np.mean(-np.log(np.clip(given, EPS, 1.0 - EPS))))


@dataclass(frozen=True)
class CalibrationBin:
    label: str
    lower: float
    upper: float
    count: int
    mean_probability: float | None
    observed_rate: float | None


@dataclass(frozen=True)
class Calibration:
    """Expected calibration error and the reliability diagram's points (every bin, empty ones
    with count 0 and no rates)."""

    expected_calibration_error: float
    bins: tuple[CalibrationBin, ...]


def calibration(
    probability: FloatArray,
    churned: BoolArray,
    bounds: tuple[float, ...] = PROBABILITY_BOUNDS,
    labels: tuple[str, ...] = PROBABILITY_BIN_LABELS,
) -> Calibration | None:
    """ECE = sum over bins of (count / total) |observed rate - mean probability|, over bins
    with inclusive upper ``bounds`` (the last 1.0). None when nothing is labelled."""
    total = probability.size
    if total == 0:
        return None
    index = np.searchsorted(np.asarray(bounds[:-1]), probability, side="left")
    count = np.bincount(index, minlength=len(bounds))
    sum_p = np.bincount(index, weights=probability, minlength=len(bounds))
    sum_y = np.bincount(index, weights=churned.astype(np.float64), minlength=len(bounds))
    filled = count > 0
    safe = np.maximum(count, 1)
    mean_p, rate = sum_p / safe, sum_y / safe
    ece = float(np.sum((count[filled] / total) * np.abs(rate[filled] - mean_p[filled])))
    lowers = (0.0, *bounds[:-1])
    bins = tuple(
        CalibrationBin(
            label=labels[b],
            lower=lowers[b],
            upper=bounds[b],
            count=int(count[b]),
            mean_probability=float(mean_p[b]) if filled[b] else None,
            observed_rate=float(rate[b]) if filled[b] else None,
        )
        for b in range(len(bounds))
    )
    return Calibration(ece, bins)


@dataclass(frozen=True)
class TierRate:
    tier: str
    count: int
    churned: int
    observed_rate: float | None
    mean_probability: float | None


def tier_rates(probability: FloatArray, churned: BoolArray) -> tuple[TierRate, ...]:
    """Observed churn per risk tier; a probability exactly on an edge is in the higher tier."""
    index = np.searchsorted(np.asarray(TIER_EDGES), probability, side="right")
    tiers = len(RISK_TIERS)
    count = np.bincount(index, minlength=tiers)
    hits = np.bincount(index, weights=churned.astype(np.float64), minlength=tiers)
    sum_p = np.bincount(index, weights=probability, minlength=tiers)
    return tuple(
        TierRate(
            tier=RISK_TIERS[t],
            count=int(count[t]),
            churned=int(hits[t]),
            observed_rate=float(hits[t] / count[t]) if count[t] else None,
            mean_probability=float(sum_p[t] / count[t]) if count[t] else None,
        )
        for t in range(tiers)
    )


@dataclass(frozen=True)
class VersionQuality:
    """Every metric of one set of labelled predictions (None where it is not defined yet)."""

    labelled: int
    churned: int
    churn_rate: float | None
    auc: Auc | None
    brier: float | None
    log_loss: float | None
    calibration: Calibration | None
    tiers: tuple[TierRate, ...]


def version_quality(probability: npt.ArrayLike, churned: npt.ArrayLike) -> VersionQuality:
    p, y = check_labelled(probability, churned)
    n = p.size
    hits = int(y.sum())
    return VersionQuality(
        labelled=n,
        churned=hits,
        churn_rate=hits / n if n else None,
        auc=roc_auc(p, y),
        brier=brier_score(p, y) if n else None,
        log_loss=log_loss(p, y) if n else None,
        calibration=calibration(p, y),
        tiers=tier_rates(p, y),
    )
