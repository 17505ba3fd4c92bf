"""The error rate: against stable (the conditional test on the errors' owners, or stable's
reference window's bound) and against the ceiling ``error_rate``."""

from __future__ import annotations

import math

import numpy as np

from rollout import sequential as seq
from rollout.checks.base import Assessment, Counts, Flags, share_of
from rollout.verdict import FAIL, INCONCLUSIVE, PASS
from routing_config.rollout_plan import RolloutThresholds

__all__ = ["LEAN", "assess_errors"]

LEAN = 0.0  # log e-value over which the error comparison leans worse: the step holds


def assess_errors(
    c: Counts, s: Counts, t: RolloutThresholds, same: Flags, bar: float, ceiling_bar: float
) -> Assessment:
    nc, ns, xc, xs = c.requests, s.requests, c.errors, s.errors
    rate_c, rate_s = share_of(xc, nc), share_of(xs, ns)
    # Same window: the conditional test on the errors' owners.
    owners = seq.log_e_above(xc, xc + xs, share_of(nc, nc + ns))
    # Another window: stable's rate's upper bound, then the candidate's rate above it.
    half = bar + math.log(2)
    if same.all():
        stable_upper = np.ones_like(xs)  # not needed: no reference window
        evidence = owners
    else:
        stable_upper = seq.bernoulli_upper(xs, ns, half)
        evidence = np.where(same, owners, seq.log_e_above(xc, nc, stable_upper))
    log_bar = np.where(same, bar, half)
    failed = evidence >= log_bar
    # The evidence leans to a worse candidate (its e-value is over 1: the data are likelier
    # under a worse candidate than under equal rates): hold the step until it is proven or the
    # horizon comes, rather than step up on it. Without the hold a candidate with 3 times
    # stable's error rate steps through 25% and 50% in a minute each with too few errors to
    # prove it, and at 100% stable's reference is too small to.
    leans = evidence > LEAN
    numbers = {"nc": nc, "ns": ns, "xc": xc, "xs": xs, "saved": c.saved,
               "stable_upper": stable_upper, "same": same.astype(float)}  # fmt: skip
    # At the horizon the comparison has no margin to be provably inside of: it counts as
    # within unless its evidence is at least halfway to the bar (on the log scale), so a step
    # held on a slight lean by a single early error passes, and a strong lean halts.
    within = evidence < log_bar / 2
    status = np.where(failed, FAIL, np.where(leans, INCONCLUSIVE, PASS))
    if t.error_rate is not None:
        over = seq.log_e_above(xc, nc, t.error_rate)
        proven_over = over >= ceiling_bar
        status = np.where(
            failed | proven_over,
            FAIL,
            np.where(leans | (rate_c > t.error_rate), INCONCLUSIVE, PASS),
        )
        # The ceiling holds the step only when the rate is over it; then it must be proven under.
        under = seq.log_e_below(xc, nc, t.error_rate) >= ceiling_bar
        within &= under | (rate_c <= t.error_rate)
        numbers |= {"ceiling_evidence": over, "ceiling_bar": np.full_like(nc, ceiling_bar)}
    return Assessment(
        "error_rate",
        status.astype(np.int8),
        rate_c,
        within,
        evidence,
        np.broadcast_to(log_bar, nc.shape).astype(float),
        t.error_rate,
        numbers | {"rate_s": rate_s},
    )
