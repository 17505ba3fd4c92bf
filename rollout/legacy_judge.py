"""The judge as it was before its checks were anytime-valid, kept only so that the simulator
(rollout/simulate.py) can run the old rule beside the new one; the controller never uses it.

Each check below is a fixed-sample test at ``significance``, run at every check over the growing
window, so every look spends ``significance`` again: that is what the simulator measures.

Three checks, each with its statistics written down so a verdict can be argued with:

- error rate: the candidate's errors (5xx it answered plus requests it failed that fallback to
  stable saved, which clients never saw) against stable's, by a one-sided two-proportion z-test
  at ``significance``; and against the absolute ceiling ``error_rate``, failed only when the
  one-sided Wilson lower confidence bound of the candidate's rate is above the ceiling, so a
  single unlucky error early in a step proves nothing;
- latency: p99 from histogram buckets (interpolated within a bucket, as Prometheus's
  histogram_quantile does), over ``p99_max_ms``, or over ``p99_ratio`` times stable's when it
  is also more than ``p99_tolerance_ms`` slower (below that, bucket width and noise); failed
  only when that is provable: the one-sided Wilson lower bound of the share of the candidate's
  answers slower than allowed is above 1%, the share a p99 leaves above it. A p99 of a few
  hundred answers rests on its top two or three, and where they fall inside a wide bucket
  (50 to 100 ms) moves it by tens of ms; a stable reference from another window (the 100%
  step, a blue/green baking period) does not share its noise. The same allowance is also held
  to the medians: a candidate whose typical answer is over ``p99_ratio`` times stable's median
  and ``p99_tolerance_ms`` slower fails when more than half its answers provably are (the
  Wilson lower bound of that share is above 1/2). A constant slowdown moves the median as much
  as the tail, but stable's median is not lifted by a few answers a busy machine delayed, which
  can lift stable's p99 above the slow candidate's and hide it;
- prediction drift: PSI of the candidate's churn-probability bins against stable's, failed above
  ``psi`` only when the two samples also differ significantly by Pearson's chi-square test of
  homogeneity at ``significance``: PSI on small samples is biased upward (by about (bins-1)/n)
  and would fail a good candidate on noise;
- tier mix: the share of customers in each risk tier (low < 0.3 <= medium < 0.6 <= high), read
  from the same bins (0.3 and 0.6 are bin bounds; a probability exactly on one counts a tier
  low), failed when the total variation distance of the two mixes (the share of customers who
  would have to change tier to make them equal; with three tiers, the largest change in one
  tier's share) is provably above ``tier_shift`` (its lower confidence bound at
  ``significance``, Bonferroni over the tiers, is) and the chi-square test on the three tiers
  finds them different at ``significance``. A point estimate over the line is not enough:
  consecutive checks judge growing, overlapping windows, so ``failure_limit`` does not make
  two chance excursions independent, and on a few hundred customers a side chance alone moves
  a tier's share by several points.

The verdict: WAITING_FOR_SAMPLES while either side has fewer than ``min_requests``; FAIL when
any check fails; else INCONCLUSIVE when a check has enough data but no clear answer (it looks
worse than allowed, not yet provably so); else PASS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

from measures.psi import psi as population_stability_index
from measures.quantile import histogram_quantile
from rollout.checks.tiers import TIER_BINS
from rollout.counts import LATENCY_BOUNDS, VersionCounts
from rollout.verdict import Check, Status, Verdict
from routing_config.rollout_plan import RolloutThresholds

__all__ = [
    "chi_square_critical",
    "chi_square_homogeneity",
    "judge",
    "p99",
    "answers_within",
    "quantile_from_buckets",
    "tier_mix",
    "wilson_lower",
]


def judge(
    candidate: VersionCounts,
    stable: VersionCounts,
    thresholds: RolloutThresholds,
    min_requests: int,
) -> Verdict:
    nc, ns = candidate.requests, stable.requests
    if nc < min_requests or ns < min_requests:
        short = [f"{name} {n:.0f}" for name, n in (("candidate", nc), ("stable", ns))]
        return Verdict(
            Status.WAITING_FOR_SAMPLES,
            (),
            f"{', '.join(short)} requests; {min_requests} each before any verdict",
            nc,
            ns,
        )
    checks = [_error_rate(candidate, stable, thresholds)]
    if thresholds.p99_ratio is not None or thresholds.p99_max_ms is not None:
        checks.append(_latency(candidate, stable, thresholds, min_requests))
    if thresholds.psi is not None:
        checks.append(_drift(candidate, stable, thresholds, min_requests))
    if thresholds.tier_shift is not None:
        checks.append(_tier_mix(candidate, stable, thresholds, min_requests))
    return _verdict(checks, nc, ns)


def _say(check: Check) -> str:
    return f"{check.name}: {check.detail}"


def _z(alpha: float) -> float:
    return NormalDist().inv_cdf(1 - alpha)


def _error_rate(c: VersionCounts, s: VersionCounts, t: RolloutThresholds) -> Check:
    pc, ps = c.errors / c.requests, s.errors / s.requests
    pooled = (c.errors + s.errors) / (c.requests + s.requests)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / c.requests + 1 / s.requests))
    z = (pc - ps) / spread if spread > 0 else 0.0
    p_value = 0.5 * math.erfc(z / math.sqrt(2))  # one-sided: is the candidate worse?
    lower = wilson_lower(c.errors, c.requests, _z(t.significance))
    said = (
        f"candidate {pc:.2%} ({c.errors:.0f}/{c.requests:.0f}, {c.saved_by_fallback:.0f} saved by "
        f"fallback) vs stable {ps:.2%} ({s.errors:.0f}/{s.requests:.0f}); one-sided z-test "
        f"p={p_value:.2g}"
    )
    ceiling = t.error_rate
    if p_value < t.significance:
        return Check(
            "error_rate", Status.FAIL, pc, ceiling, f"{said} < {t.significance}: worse than stable"
        )
    if ceiling is not None and lower > ceiling:
        detail = f"{said}; its lower bound {lower:.2%} is above the ceiling {ceiling:.2%}"
        return Check("error_rate", Status.FAIL, pc, ceiling, detail)
    if ceiling is not None and pc > ceiling:
        detail = f"{said}; above the ceiling {ceiling:.2%}, not yet significantly (lower bound "
        detail += f"{lower:.2%})"
        return Check("error_rate", Status.INCONCLUSIVE, pc, ceiling, detail)
    return Check("error_rate", Status.PASS, pc, ceiling, said)


def wilson_lower(successes: float, n: float, z: float) -> float:
    """One-sided Wilson score lower bound of a proportion."""
    if n <= 0:
        return 0.0
    p = successes / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - margin) / (1 + z * z / n))


def quantile_from_buckets(
    q: float, cumulative: Sequence[float], bounds: Sequence[float] = LATENCY_BOUNDS
) -> float | None:
    """The q-quantile of a cumulative histogram (last count is +Inf); None with no samples."""
    return histogram_quantile(q, bounds, cumulative)


def p99(counts: VersionCounts) -> float | None:
    return quantile_from_buckets(0.99, counts.latency)


def median(counts: VersionCounts) -> float | None:
    return quantile_from_buckets(0.5, counts.latency)


def _latency(c: VersionCounts, s: VersionCounts, t: RolloutThresholds, min_requests: int) -> Check:
    nc, ns = c.latency[-1], s.latency[-1]
    if nc < min_requests or ns < min_requests:
        return Check(
            "latency_p99",
            Status.WAITING_FOR_SAMPLES,
            None,
            t.p99_ratio,
            f"{nc:.0f} candidate and {ns:.0f} stable answers timed; {min_requests} each needed",
        )
    pc, ps = p99(c) or 0.0, p99(s) or 0.0
    ratio = pc / ps if ps > 0 else math.inf
    said = f"p99 {pc * 1000:.1f} ms vs stable {ps * 1000:.1f} ms (x{ratio:.2f})"
    z = _z(t.significance)
    if t.p99_max_ms is not None and pc * 1000 > t.p99_max_ms:
        over = t.p99_max_ms / 1000
        lower = wilson_lower(nc - answers_within(c.latency, over), nc, z)
        detail = f"{said}, over {t.p99_max_ms} ms"
        if lower > TAIL:
            return Check("latency_p99", Status.FAIL, pc, over, detail)
        detail += f", not provably yet ({lower:.1%} of answers at least are slower)"
        return Check("latency_p99", Status.INCONCLUSIVE, pc, over, detail)
    if t.p99_ratio is not None:
        # Slower than allowed: over the ratio and by more than the tolerance.
        allowed = max(ps * t.p99_ratio, ps + t.p99_tolerance_ms / 1000)
        if pc > allowed:
            lower = wilson_lower(nc - answers_within(c.latency, allowed), nc, z)
            detail = f"{said}: over x{t.p99_ratio} and {(pc - ps) * 1000:.0f} ms slower; at least "
            detail += f"{lower:.1%} of its answers are over {allowed * 1000:.1f} ms"
            if lower > TAIL:
                return Check("latency_p99", Status.FAIL, pc, t.p99_ratio, detail)
            detail += f", not provably more than {TAIL:.0%}"
            return Check("latency_p99", Status.INCONCLUSIVE, pc, t.p99_ratio, detail)
        mc, ms = median(c) or 0.0, median(s) or 0.0
        allowed = max(ms * t.p99_ratio, ms + t.p99_tolerance_ms / 1000)
        if mc > allowed:
            lower = wilson_lower(nc - answers_within(c.latency, allowed), nc, z)
            detail = f"{said}; p50 {mc * 1000:.1f} ms vs stable {ms * 1000:.1f} ms: at least "
            detail += f"{lower:.1%} of its answers are over {allowed * 1000:.1f} ms"
            if lower > 0.5:
                return Check("latency_p99", Status.FAIL, pc, t.p99_ratio, detail)
            detail += ", not provably more than half"
            return Check("latency_p99", Status.INCONCLUSIVE, pc, t.p99_ratio, detail)
    return Check("latency_p99", Status.PASS, pc, t.p99_ratio, said)


# The share of answers a p99 leaves above it.
TAIL = 0.01


def answers_within(cumulative: Sequence[float], seconds: float) -> float:
    """Answers that took at most ``seconds``, from a cumulative histogram (interpolated
    within a bucket, as histogram_quantile does)."""
    lower_bound, below = 0.0, 0.0
    for bound, count in zip(LATENCY_BOUNDS, cumulative, strict=False):
        if seconds <= bound:
            return below + (count - below) * (seconds - lower_bound) / (bound - lower_bound)
        lower_bound, below = bound, count
    return below  # past the last finite bound: only the +Inf bucket is slower


def chi_square_critical(df: int, alpha: float) -> float:
    """The (1 - alpha) quantile of chi-square with ``df`` degrees of freedom (Wilson-Hilferty;
    within a few percent for df >= 1 at the alphas used here)."""
    k = max(df, 1)
    return k * (1 - 2 / (9 * k) + _z(alpha) * math.sqrt(2 / (9 * k))) ** 3


def chi_square_homogeneity(a: Sequence[float], b: Sequence[float]) -> tuple[float, int]:
    """Pearson's chi-square statistic that two binned samples share one distribution, and the
    number of bins either sample uses."""
    na, nb = sum(a), sum(b)
    statistic, used = 0.0, 0
    for x, y in zip(a, b, strict=True):
        pooled = (x + y) / (na + nb)
        if pooled <= 0:
            continue
        used += 1
        statistic += (x - na * pooled) ** 2 / (na * pooled) + (y - nb * pooled) ** 2 / (nb * pooled)
    return statistic, used


def _drift(c: VersionCounts, s: VersionCounts, t: RolloutThresholds, min_requests: int) -> Check:
    assert t.psi is not None
    nc, ns = sum(c.probability), sum(s.probability)
    if nc == 0 and ns == 0:
        return Check(
            "psi",
            Status.INCONCLUSIVE,
            None,
            t.psi,
            "no model_churn_probability series from the replicas (set thresholds.psi: null to "
            "judge without drift)",
        )
    if nc < min_requests or ns < min_requests:
        return Check(
            "psi",
            Status.WAITING_FOR_SAMPLES,
            None,
            t.psi,
            f"{nc:.0f} candidate and {ns:.0f} stable predictions binned; {min_requests} each "
            "needed",
        )
    return _psi_check(
        "psi", c.probability, s.probability, t.psi, t.significance, "candidate / stable predictions"
    )


def _verdict(checks: Sequence[Check], nc: float, ns: float) -> Verdict:
    for status in (Status.FAIL, Status.WAITING_FOR_SAMPLES, Status.INCONCLUSIVE):
        named = [c for c in checks if c.status is status]
        if named:
            return Verdict(status, tuple(checks), "; ".join(_say(c) for c in named), nc, ns)
    return Verdict(Status.PASS, tuple(checks), "every check passed", nc, ns)


def _psi_check(
    name: str,
    candidate: Sequence[float],
    stable: Sequence[float],
    threshold: float,
    significance: float,
    what: str,
) -> Check:
    nc, ns = sum(candidate), sum(stable)
    value = population_stability_index(stable, candidate) or 0.0
    statistic, used = chi_square_homogeneity(candidate, stable)
    critical = chi_square_critical(used - 1, significance)
    said = f"PSI {value:.3f} over {nc:.0f} / {ns:.0f} {what}"
    if value > threshold and statistic > critical:
        return Check(name, Status.FAIL, value, threshold, f"{said}: over {threshold}")
    if value > threshold:
        detail = f"{said}: over {threshold}, not significantly yet (chi-square {statistic:.1f} "
        detail += f"<= {critical:.1f})"
        return Check(name, Status.INCONCLUSIVE, value, threshold, detail)
    return Check(name, Status.PASS, value, threshold, said)


def tier_mix(bins: Sequence[float]) -> tuple[float, ...]:
    """Customers per risk tier, from the ten probability bins."""
    return tuple(sum(bins[i] for i in tier) for tier in TIER_BINS)


def _tier_mix(c: VersionCounts, s: VersionCounts, t: RolloutThresholds, min_requests: int) -> Check:
    assert t.tier_shift is not None
    mc, ms = tier_mix(c.probability), tier_mix(s.probability)
    nc, ns = sum(mc), sum(ms)
    if nc == 0 and ns == 0:
        return Check(
            "tier_mix",
            Status.INCONCLUSIVE,
            None,
            t.tier_shift,
            "no model_churn_probability series from the replicas (set thresholds.tier_shift: "
            "null to judge without the tier mix)",
        )
    if nc < min_requests or ns < min_requests:
        return Check(
            "tier_mix",
            Status.WAITING_FOR_SAMPLES,
            None,
            t.tier_shift,
            f"{nc:.0f} candidate and {ns:.0f} stable tiers counted; {min_requests} each needed",
        )
    # With three tiers every set of tiers is one tier or the other two, so the total variation
    # distance is the largest single tier's change in share.
    changes = [(a / nc - b / ns, a / nc, b / ns) for a, b in zip(mc, ms, strict=True)]
    shift = max(abs(d) for d, _, _ in changes)
    z = _z(t.significance / len(changes))  # one-sided, Bonferroni over the tiers
    lower = max(
        abs(d) - z * math.sqrt(pc * (1 - pc) / nc + ps * (1 - ps) / ns) for d, pc, ps in changes
    )
    statistic, used = chi_square_homogeneity(mc, ms)
    critical = chi_square_critical(used - 1, t.significance)
    shares = (
        "/".join(f"{a / nc:.0%}" for a in mc)
        + " vs stable "
        + "/".join(f"{b / ns:.0%}" for b in ms)
    )
    said = f"low/medium/high {shares}: {shift:.1%} of customers in another tier"
    said += f" (lower bound {max(lower, 0.0):.1%})"
    if lower > t.tier_shift and statistic > critical:
        return Check(
            "tier_mix", Status.FAIL, shift, t.tier_shift, f"{said}, over {t.tier_shift:.0%}"
        )
    if shift > t.tier_shift:
        detail = f"{said}, over {t.tier_shift:.0%}, not provably yet"
        return Check("tier_mix", Status.INCONCLUSIVE, shift, t.tier_shift, detail)
    return Check("tier_mix", Status.PASS, shift, t.tier_shift, said)
