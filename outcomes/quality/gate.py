"""The rollout's quality gate: may the candidate replace stable, judged on outcomes? Pure.

Given a comparison of the candidate with stable (``outcomes.quality.compare``), ``min_outcomes``
and ``max_auc_drop``, one decision:

- WAIT: fewer than ``min_outcomes`` labelled outcomes on either side, or fewer than two
  churners or two stayers on one (no AUC yet);
- PASS: the candidate is provably not worse than stable by more than the margin: the lower
  confidence bound of AUC_candidate - AUC_stable is above -``max_auc_drop``;
- FAIL: provably worse by more than the margin: the upper bound is below -``max_auc_drop``;
- INCONCLUSIVE: the bounds straddle -``max_auc_drop``; more outcomes will tell (the reason
  says about how many, if the difference stays where it is).

The controller asks again and again as outcomes arrive, and stops at the first PASS or FAIL.
A fixed-sample 95% interval looked at every few minutes would be crossed by chance far more
often than 5% of the time, so the bounds are a **time-uniform confidence sequence**: Robbins'
normal-mixture boundary (Howard, Ramdas, McAuliffe, Sekhon, "Time-uniform, nonparametric,
nonasymptotic confidence sequences", Ann. Statist. 2021, the two-sided normal mixture), applied
to the normal approximation of the AUC difference. With the estimate's variance v (DeLong's,
unpaired or paired), intrinsic time I = 1 / v and S = I (estimate - truth), which grows like a
Brownian motion in I, the mixture martingale sqrt(rho / (I + rho)) exp(S^2 / (2 (I + rho)))
stays below 1 / alpha at every look at once with probability 1 - alpha (Ville's inequality),
that is

    |estimate - truth| <= sqrt((I + rho) (log(1 + I / rho) + 2 log(1 / alpha))) / I

at all times together. With DeLong's plug-in variance this holds asymptotically, as the
time-uniform central limit theory of Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas (2021)
makes precise. Measured (``tests/outcomes/quality/test_gate.py``): over 200 simulated rollouts
read 30 times each (500 to 10,000 paired outcomes), the sequence ever missed the true AUC
difference in 2.5% of them; a fixed-sample 95% interval read as often missed in 35%.
``rho`` is fixed by the policy before any data: the value that reaches a half-width of
``max_auc_drop`` in the least intrinsic time, so the sequence is tightest where the decision
is hardest (two equally good versions). The price of looking any number of times: at that
point the half-width is 1.55 times a fixed-sample 95% interval's at the same variance, so it
takes 2.4 times the outcomes (for alpha 0.05, any margin: the boundary scales).

Which comparison to give: the paired one when the candidate shadows stable (a shadow bake, or
shadow during the canary), the unpaired one over the canary split otherwise; the paired one
needs far fewer outcomes (``compare``'s docstring has the numbers). Ask with one of them
throughout a rollout: switching between two sequences at will would spend alpha twice.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

import numpy as np

from outcomes.quality.compare import Comparison

__all__ = [
    "Decision",
    "GateResult",
    "confidence_sequence_radius",
    "decide",
    "tuned_rho",
]


class Decision(StrEnum):
    WAIT = "WAIT"
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"


def confidence_sequence_radius(variance: float, alpha: float, rho: float) -> float:
    """Half-width of the two-sided normal-mixture confidence sequence at level 1 - alpha for
    an estimate whose variance is ``variance`` (intrinsic time I = 1 / variance)."""
    if variance <= 0:
        return 0.0
    info = 1.0 / variance
    return math.sqrt((info + rho) * (math.log1p(info / rho) + 2 * math.log(1 / alpha))) / info


@lru_cache(maxsize=64)
def tuned_rho(half_width: float, alpha: float) -> float:
    """The rho whose boundary first reaches ``half_width``: minimises the intrinsic time I
    at which radius(1 / I) = half_width, over rho from 1 to 1e9 (log grid, then bisection
    on I for each rho). Depends only on the policy, never on data."""
    rhos = np.logspace(0, 9, 721)
    log_bar = 2 * math.log(1 / alpha)
    low = np.full(rhos.shape, 1.0)
    high = np.full(rhos.shape, 1e15)
    for _ in range(200):  # bisection on log I: radius falls as I grows (past its start)
        mid = np.sqrt(low * high)
        radius = np.sqrt((mid + rhos) * (np.log1p(mid / rhos) + log_bar)) / mid
        wide = radius > half_width
        low, high = np.where(wide, mid, low), np.where(wide, high, mid)
    return float(rhos[int(np.argmin(high))])


@dataclass(frozen=True)
class GateResult:
    """The decision and every number behind it (for the decision log and the status page)."""

    decision: Decision
    reason: str
    design: str | None
    n_candidate: int
    n_stable: int
    min_outcomes: int
    max_auc_drop: float
    alpha: float
    auc_difference: float | None = None
    lower: float | None = None
    upper: float | None = None
    rho: float | None = None
    outcomes_needed: int | None = None  # INCONCLUSIVE: about this many in all, if nothing moves

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["decision"] = str(self.decision)
        return out


def _outcomes_needed(c: Comparison, gap: float, alpha: float, rho: float) -> int | None:
    """Outcomes (both sides, in today's proportions) at which the radius would fall below
    ``gap`` = |difference + margin|, if the difference and the variance per outcome stay."""
    assert c.auc is not None
    if gap <= 0 or c.auc.variance <= 0:
        return None
    now = c.n_candidate + (c.n_stable if c.design == "unpaired" else 0)
    per_outcome = c.auc.variance * now
    scale_low, scale_high = 1.0, 1.0
    while confidence_sequence_radius(per_outcome / (now * scale_high), alpha, rho) >= gap:
        scale_high *= 2
        if scale_high > 1e9:
            return None
    for _ in range(60):
        mid = (scale_low + scale_high) / 2
        if confidence_sequence_radius(per_outcome / (now * mid), alpha, rho) >= gap:
            scale_low = mid
        else:
            scale_high = mid
    return math.ceil(now * scale_high)


def decide(
    comparison: Comparison | None,
    min_outcomes: int,
    max_auc_drop: float,
    alpha: float = 0.05,
) -> GateResult:
    """The gate's decision on ``comparison`` (AUC candidate - stable), valid however often it
    is asked (see the module docstring)."""
    if not 0 < alpha < 1:
        raise ValueError("alpha must be within (0, 1)")
    if max_auc_drop < 0:
        raise ValueError("max_auc_drop must be at least 0")
    c = comparison

    def result(decision: Decision, reason: str, **numbers: Any) -> GateResult:
        return GateResult(
            decision=decision,
            reason=reason,
            design=None if c is None else c.design,
            n_candidate=0 if c is None else c.n_candidate,
            n_stable=0 if c is None else c.n_stable,
            min_outcomes=min_outcomes,
            max_auc_drop=max_auc_drop,
            alpha=alpha,
            **numbers,
        )

    if c is None:
        return result(
            Decision.WAIT, "waiting for outcomes: no labelled predictions of both versions yet"
        )
    level = f"{100 * (1 - alpha):g}%"
    if c.n_candidate < min_outcomes or c.n_stable < min_outcomes:
        what = "pairs" if c.design == "paired" else "outcomes"
        return result(
            Decision.WAIT,
            f"waiting for outcomes ({c.design}): {c.candidate} has {c.n_candidate} labelled "
            f"{what}, {c.stable} {c.n_stable}; the gate needs {min_outcomes} on both sides",
        )
    if c.auc is None:
        return result(
            Decision.WAIT,
            f"waiting for outcomes ({c.design}): an AUC needs two churners and two customers "
            f"who stayed on each side ({c.candidate}: {c.churned_candidate} churned of "
            f"{c.n_candidate}; {c.stable}: {c.churned_stable} of {c.n_stable})",
        )
    rho = tuned_rho(max(max_auc_drop, 0.005), alpha)
    radius = confidence_sequence_radius(c.auc.variance, alpha, rho)
    d = c.auc.estimate
    lower, upper = d - radius, d + radius
    numbers = (
        f"AUC {c.candidate} - {c.stable} = {d:+.4f}, {level} always-valid bounds "
        f"[{lower:+.4f}, {upper:+.4f}] ({c.design}, {c.n_candidate} and {c.n_stable} outcomes)"
    )
    bounds: dict[str, float] = {"auc_difference": d, "lower": lower, "upper": upper, "rho": rho}
    if lower > -max_auc_drop:
        return result(
            Decision.PASS,
            f"{numbers}: the lower bound is above -{max_auc_drop:g}, so {c.candidate} is not "
            f"worse than {c.stable} by more than {max_auc_drop:g}",
            **bounds,
        )
    if upper < -max_auc_drop:
        return result(
            Decision.FAIL,
            f"{numbers}: the upper bound is below -{max_auc_drop:g}, so {c.candidate} ranks "
            f"churners worse than {c.stable} by more than {max_auc_drop:g}",
            **bounds,
        )
    needed = _outcomes_needed(c, abs(d + max_auc_drop), alpha, rho)
    more = (
        f"; if the difference holds, about {needed} outcomes in all would decide"
        if needed is not None
        else ""
    )
    return result(
        Decision.INCONCLUSIVE,
        f"{numbers}: the bounds straddle -{max_auc_drop:g}, not yet provably better or "
        f"worse than the margin{more}",
        outcomes_needed=needed,
        **bounds,
    )
