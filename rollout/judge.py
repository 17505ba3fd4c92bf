"""The judge: counts of candidate and stable over a window in, one verdict out. Pure.

Every check is anytime-valid: the controller looks at a step's growing counts every
``check_every``, as often as it likes, and the chance that a candidate as good as stable (an
A/A rollout) is ever failed, over the whole rollout, stays at most ``significance``. Each check
weighs its evidence as an e-value (a mixture likelihood ratio, rollout/sequential.py), which a
good candidate makes reach 1/alpha with probability at most alpha however many times it is
looked at (Ville's inequality); its bounds are confidence sequences, valid at every look at once
(Howard, Ramdas, McAuliffe, Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence
sequences", Ann. Statist. 2021; Johari, Koomen, Pekelis, Walsh, "Always valid inference", Oper.
Res. 2022; Lindon and Malek, "Anytime-valid inference for multinomial count data", NeurIPS 2022).

The rollout's ``significance`` is spent once: over the windows the rollout judges (each step,
and the shadow bake), front-loaded (``Budget``), and within a window over the checks by weight
(the error comparison with stable 8, every other test 1), a Bonferroni split, so the sum over
everything the rollout ever tests is ``significance``.

- error rate against stable, on the same window: the conditional test. When both versions fail
  at the same rate, each error is the candidate's with probability equal to its share of the
  requests, whatever the rate, so the owners of the errors are coin flips of known bias and a
  mixture of likelihood ratios over a worse candidate (its odds of owning an error 1.25 to 100
  times the fair odds) is a martingale: exact with a handful of errors, no normal approximation
  and no minimum sample. Against a stable reference from another window (the 100% step, a
  blue/green bake): stable's rate's upper confidence bound, then the same Bernoulli mixture that
  the candidate's rate is above it (alpha halved between the two);
- error rate against the ceiling ``error_rate``: the Bernoulli mixture that the candidate's rate
  is above it;
- latency, from histogram buckets, answers spread evenly within a bucket (as Prometheus's
  histogram_quantile takes them; the one assumption beyond the counts): stable's p99 (and
  median) upper confidence bound U is its quantile at the smallest share of answers that
  provably exceeds 99% (half); the candidate is allowed max(``p99_ratio`` x U,
  U + ``p99_tolerance_ms``); it fails when the share of its answers over that provably exceeds
  1% (half), and when the share over ``p99_max_ms`` provably exceeds 1%. A constant slowdown
  moves the median as much as the tail, while a few answers a busy machine delayed can lift
  stable's p99 over a slower candidate's;
- prediction drift: PSI of the candidate's churn-probability bins against stable's over ``psi``
  and the two distributions provably different: per bin, each prediction is the candidate's
  with its overall share under "one distribution", tested by a beta mixture per bin, the
  product over bins a martingale (Lindon and Malek's Dirichlet-multinomial test);
- tier mix: the largest change of one risk tier's share (low < 0.3 <= medium < 0.6 <= high; the
  total variation distance of the two mixes) provably above ``tier_shift``: the normal mixture
  confidence sequence of each tier's difference (plug-in variance, asymptotic: Waudby-Smith,
  Arbour, Sinha, Kennedy, Ramdas, "Time-uniform central limit theory", 2021), from
  ``min_requests`` a side on (asymptotic: on a few dozen customers it is not yet valid).

The verdict: FAIL when any check fails, at any sample size (a proof needs no minimum);
otherwise WAITING_FOR_SAMPLES while either side has fewer than ``min_requests``; INCONCLUSIVE
when a check looks worse than its allowance, not provably; else PASS (nothing looks wrong).

At the step's horizon (``horizon=True``) a verdict that is not PASS is decided with the same
bounds: FAIL when a check is provably outside its allowance, PASS when every check holding the
step is provably inside it (non-inferiority: each confidence bound inside its threshold; a
check that passes stays passed, except short of ``min_requests``, where every check must be
proven; the comparison of error rates with stable has no margin, so inside means its evidence
is under the square root of its bar), else HALTED, which says in one sentence what is
unresolved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from measures.psi import PSI_FLOOR
from measures.quantile import histogram_quantile
from rollout import sequential as seq
from rollout.counts import LATENCY_BOUNDS, VersionCounts
from routing_config.rollout_plan import RolloutSpec, RolloutThresholds, ShadowBakeSpec
from vocabulary.buckets import PROBABILITY_BOUNDS, TIER_EDGE_BINS

__all__ = [
    "Assessment",
    "Budget",
    "Check",
    "Counts",
    "Status",
    "Verdict",
    "assess",
    "combine",
    "judge",
    "judge_reference",
    "judge_shadow",
    "quantile_from_buckets",
    "quantiles",
    "tier_mix",
]

Array = npt.NDArray[np.float64]
Flags = npt.NDArray[np.bool_]
Codes = npt.NDArray[np.int8]


class Status(StrEnum):
    WAITING_FOR_SAMPLES = "WAITING_FOR_SAMPLES"
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
    HALTED = "HALTED"  # at the horizon, neither provably in nor out: the operator decides


# Status codes in arrays, in the order a verdict takes them (the worst wins).
PASS, WAITING, INCONCLUSIVE, FAIL, HALTED = 0, 1, 2, 3, 4
STATUS_OF_CODE = {
    PASS: Status.PASS,
    WAITING: Status.WAITING_FOR_SAMPLES,
    INCONCLUSIVE: Status.INCONCLUSIVE,
    FAIL: Status.FAIL,
    HALTED: Status.HALTED,
}
CODE_OF_STATUS = {status: code for code, status in STATUS_OF_CODE.items()}

TAIL = 0.01  # the share of answers a p99 leaves above it
LEAN = 0.0  # log e-value over which the error comparison leans worse: the step holds
# Test weights inside a window: the error comparison is the check that must stop a bad
# candidate early, so it has the largest share of the window's alpha.
WEIGHTS = {"error_rate": 8.0, "ceiling": 1.0, "tail": 1.0, "median": 1.0, "max": 1.0,
           "psi": 1.0, "tier_mix": 1.0}  # fmt: skip
# The probability bins of each risk tier: low < 0.3 <= medium < 0.6 <= high.
TIER_BINS = tuple(
    tuple(range(low, high))
    for low, high in zip(
        (0, *TIER_EDGE_BINS), (*TIER_EDGE_BINS, len(PROBABILITY_BOUNDS)), strict=True
    )
)
_BOUNDS = np.array(LATENCY_BOUNDS, dtype=float)


@dataclass(frozen=True, slots=True)
class Check:
    name: str  # error_rate | latency_p99 | psi | tier_mix | tier_agreement | shadow_psi
    status: Status
    value: float | None  # the candidate's number (rate, seconds, PSI)
    threshold: float | None
    detail: str
    # How strong the evidence against the candidate is (an e-value) and the bar a FAIL needs.
    evidence: float | None = None
    bar: float | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "status": self.status.value,
            "value": self.value,
            "threshold": self.threshold,
            "detail": self.detail,
        }
        if self.evidence is not None:
            out["evidence"] = self.evidence
            out["bar"] = self.bar
        return out


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    checks: tuple[Check, ...]
    reason: str
    candidate_requests: float
    stable_requests: float
    reference: str | None = None  # the window stable's counts are of, when the caller says

    def against(self, reference: str) -> Verdict:
        return replace(self, reference=reference)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "verdict": self.status.value,
            "judged": self.reason,
            "samples": {"candidate": self.candidate_requests, "stable": self.stable_requests},
            "checks": [check.to_json() for check in self.checks],
        }
        if self.reference is not None:
            out["stable_window"] = self.reference
        return out


@dataclass(frozen=True, slots=True)
class Budget:
    """The rollout's ``significance`` spread over the windows it judges (the shadow bake, then
    each step), front-loaded: each window has a third of the share of the one before,
    normalised to sum to ``significance`` (with four steps 27/40, 9/40, 3/40, 1/40). The first
    steps see the fewest samples, where a larger alpha stops a bad candidate sooner; later
    steps see many times more, where evidence grows fast and a smaller alpha costs little (it
    enters as log(1/alpha))."""

    alpha: float  # this window's share

    @classmethod
    def of(cls, spec: RolloutSpec, step: int = 0) -> Budget:
        steps = len(spec.steps) if spec.steps is not None else 1
        bake = 1 if spec.shadow_bake is not None else 0
        windows = steps + bake
        window = min(max(step + bake, 0), windows - 1)
        share = 3.0 ** (windows - 1 - window) * 2 / (3.0**windows - 1)
        return cls(spec.thresholds.significance * share)

    def log_bar(self, weight: float, total: float) -> float:
        """log(1/alpha) of a test with ``weight`` of the window's ``total``."""
        return math.log(total / (self.alpha * weight))


@dataclass(frozen=True, slots=True)
class Counts:
    """One version's counts over a window, for a batch of rows (rollouts) at once."""

    requests: Array
    errors: Array
    saved: Array
    latency: Array  # (rows, buckets + 1): cumulative, the last is +Inf
    probability: Array  # (rows, bins)

    @classmethod
    def of(cls, *counts: VersionCounts) -> Counts:
        return cls(
            np.array([c.requests for c in counts], dtype=float),
            np.array([c.errors for c in counts], dtype=float),
            np.array([c.saved_by_fallback for c in counts], dtype=float),
            np.array([c.latency for c in counts], dtype=float),
            np.array([c.probability for c in counts], dtype=float),
        )

    def rows(self, which: npt.NDArray[np.bool_] | npt.NDArray[np.int64]) -> Counts:
        return Counts(
            self.requests[which],
            self.errors[which],
            self.saved[which],
            self.latency[which],
            self.probability[which],
        )


@dataclass(slots=True)
class Assessment:
    """One check over a batch: its status, value, whether it is provably within its
    allowance (for the horizon), and the numbers its sentence is made of."""

    name: str
    status: Codes
    value: Array
    within: Flags
    evidence: Array  # log e-value of the test nearest to failing
    log_bar: Array
    threshold: float | None
    numbers: dict[str, Array] = field(default_factory=dict)


# --- the batch: every check on every row ----------------------------------------------------


def assess(
    c: Counts,
    s: Counts,
    t: RolloutThresholds,
    budget: Budget,
    same_window: bool | Flags = True,
    decide: bool = True,
    min_requests: float = 0,
) -> list[Assessment]:
    """Every enabled check, on every row of the batch. ``decide``: also whether each check is
    provably within its allowance (the horizon's question; some of its bounds cost a search,
    so a batch with no row at its horizon may skip them, and its ``within`` is then not
    meaningful)."""
    same = np.broadcast_to(np.asarray(same_window, dtype=bool), c.requests.shape)
    names = ["error_rate"] + (["ceiling"] if t.error_rate is not None else [])
    if t.p99_ratio is not None:
        names += ["tail", "median"]
    if t.p99_max_ms is not None:
        names.append("max")
    if t.psi is not None:
        names.append("psi")
    if t.tier_shift is not None:
        names.append("tier_mix")
    total = sum(WEIGHTS[n] for n in names)

    def bar(name: str) -> float:
        return budget.log_bar(WEIGHTS[name], total)

    out = [_errors(c, s, t, same, bar("error_rate"), bar("ceiling") if "ceiling" in names else 0)]
    if t.p99_ratio is not None or t.p99_max_ms is not None:
        bars: dict[str, float] = {n: bar(n) for n in ("tail", "median", "max") if n in names}
        out.append(_latency(c, s, t, bars, decide))
    if t.psi is not None:
        out.append(_drift(c, s, t.psi, bar("psi"), decide))
    if t.tier_shift is not None:
        out.append(_tiers(c, s, t.tier_shift, bar("tier_mix"), min_requests))
    return out


def combine(
    checks: Sequence[Assessment], enough: Flags, horizon: bool | Flags = False
) -> tuple[Codes, Codes]:
    """The verdict of each row, and of each check the status it counts with: FAIL at once;
    WAITING below the minimum; the worst of the rest; at the horizon, what is not a PASS is
    decided: PASS when every check that holds the step (not PASS; every check, short of the
    minimum sample) is provably within its allowance, else HALTED."""
    statuses = np.stack([a.status for a in checks]) if checks else np.zeros((0, len(enough)))
    failed = (statuses == FAIL).any(axis=0)
    worst = statuses.max(axis=0, initial=PASS).astype(np.int8)
    lenient = np.where(failed, FAIL, np.where(enough, worst, WAITING)).astype(np.int8)
    # With enough samples, a check that passes stays passed and those holding the step must be
    # proven within; short of the minimum, every check must be.
    passing = (statuses == PASS) & enough
    settled = (np.stack([a.within for a in checks]) | passing) if checks else None
    within = settled.all(axis=0) if settled is not None else np.ones_like(enough)
    at_end = np.broadcast_to(np.asarray(horizon, dtype=bool), lenient.shape)
    decided = np.where(lenient == PASS, PASS, np.where(within, PASS, HALTED))
    final = np.where(at_end & (lenient != FAIL), decided, lenient).astype(np.int8)
    return final, statuses.astype(np.int8)


def _share(x: Array, n: Array) -> Array:
    return np.where(n > 0, x / np.maximum(n, 1e-300), 0.0)


def _errors(
    c: Counts, s: Counts, t: RolloutThresholds, same: Flags, bar: float, ceiling_bar: float
) -> Assessment:
    nc, ns, xc, xs = c.requests, s.requests, c.errors, s.errors
    rate_c, rate_s = _share(xc, nc), _share(xs, ns)
    # Same window: the conditional test on the errors' owners.
    owners = seq.log_e_above(xc, xc + xs, _share(nc, nc + ns))
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


def quantiles(q: float | Array, cumulative: Array) -> Array:
    """The q-quantile of each row's cumulative histogram, interpolated within its bucket as
    measures.quantile.histogram_quantile does (nan for an empty row)."""
    finite = cumulative[:, :-1]
    total = cumulative[:, -1]
    rank = q * total
    reached = finite >= rank[:, None]
    found = reached.any(axis=1)
    i = np.where(found, reached.argmax(axis=1), len(LATENCY_BOUNDS) - 1)
    rows = np.arange(len(total))
    upper_bound, count = _BOUNDS[i], finite[rows, i]
    lower_bound = np.where(i > 0, _BOUNDS[np.maximum(i - 1, 0)], 0.0)
    below = np.where(i > 0, finite[rows, np.maximum(i - 1, 0)], 0.0)
    inside = lower_bound + (upper_bound - lower_bound) * (rank - below) / np.maximum(
        count - below, 1e-300
    )
    value = np.where(found, inside, _BOUNDS[-1])
    return np.where(total > 0, value, np.nan)


def _share_needed(n: Array, q: float, bar: float, above: bool) -> Array:
    """The smallest share of n answers that provably puts the true share above q (``above``),
    or the largest that provably keeps it below; nan when no share of n would."""
    low, high = np.zeros_like(n), np.ones_like(n)
    for _ in range(18):  # a share to within 4e-6
        mid = (low + high) / 2
        if above:
            proven = seq.log_e_above(mid * n, n, q) >= bar
            low, high = np.where(proven, low, mid), np.where(proven, mid, high)
        else:
            proven = seq.log_e_below(mid * n, n, q) >= bar
            low, high = np.where(proven, mid, low), np.where(proven, high, mid)
    share = high if above else low
    possible = seq.log_e_above(n, n, q) >= bar if above else seq.log_e_below(0 * n, n, q) >= bar
    return np.where(possible & (n > 0), share, np.nan)


def _provable_upper(cumulative: Array, q: float, bar: float) -> Array:
    """An upper confidence bound of the q-quantile: the quantile at the smallest share of
    answers that provably exceeds q (inf when there are too few answers)."""
    share = _share_needed(cumulative[:, -1], q, bar, above=True)
    value = quantiles(np.nan_to_num(share, nan=1.0), cumulative)
    return np.where(np.isnan(share) | (share >= 1), np.inf, value)


def _provable_lower(cumulative: Array, q: float, bar: float) -> Array:
    """A lower confidence bound of the q-quantile: the quantile at the largest share of
    answers that provably stays under q (0 when there is none)."""
    share = _share_needed(cumulative[:, -1], q, bar, above=False)
    value = quantiles(np.nan_to_num(share, nan=0.0), cumulative)
    return np.where(np.isnan(share) | (share <= 0), 0.0, np.nan_to_num(value))


def answers_within(cumulative: Array, line: Array) -> Array:
    """Answers at most ``line`` seconds, per row, interpolated within the bucket the line falls
    in (as histogram_quantile does: answers spread evenly across a bucket); past the last
    finite bound only the +Inf bucket is slower."""
    finite = cumulative[:, :-1]
    rows = np.arange(len(finite))
    capped = np.minimum(line, _BOUNDS[-1])
    at = np.searchsorted(_BOUNDS, capped, side="left")
    upper_bound, count = _BOUNDS[at], finite[rows, at]
    lower_bound = np.where(at > 0, _BOUNDS[np.maximum(at - 1, 0)], 0.0)
    below = np.where(at > 0, finite[rows, np.maximum(at - 1, 0)], 0.0)
    inside = below + (count - below) * (capped - lower_bound) / (upper_bound - lower_bound)
    return np.where(np.isinf(line), cumulative[:, -1], inside)


def _over(cumulative: Array, line: Array) -> Array:
    """Answers over ``line`` seconds (interpolated within its bucket)."""
    return cumulative[:, -1] - answers_within(cumulative, line)


def _latency(
    c: Counts, s: Counts, t: RolloutThresholds, bars: Mapping[str, float], decide: bool
) -> Assessment:
    nc = c.latency[:, -1]
    tol = t.p99_tolerance_ms / 1000
    p99_c, p99_s = quantiles(0.99, c.latency), quantiles(0.99, s.latency)
    med_c, med_s = quantiles(0.5, c.latency), quantiles(0.5, s.latency)
    status = np.full(nc.shape, PASS, dtype=np.int8)
    within = np.ones(nc.shape, dtype=bool)
    evidence = np.full(nc.shape, -np.inf)
    log_bar = np.full(nc.shape, np.inf)
    numbers: dict[str, Array] = {"p99_c": p99_c, "p99_s": p99_s, "med_c": med_c, "med_s": med_s,
                                 "nc": nc}  # fmt: skip

    def test(name: str, over: Array, share: float, bar: float, looks_over: Flags) -> None:
        nonlocal status, evidence, log_bar
        e = seq.log_e_above(over, nc, share)
        numbers[f"{name}_over"], numbers[f"{name}_evidence"] = over, e
        fail = e >= bar
        status = np.maximum(status, np.where(fail, FAIL, np.where(looks_over, INCONCLUSIVE, PASS)))
        nearer = e - bar > evidence - log_bar
        evidence, log_bar = np.where(nearer, e, evidence), np.where(nearer, bar, log_bar)

    if t.p99_max_ms is not None:
        line = t.p99_max_ms / 1000
        bar = bars["max"]
        numbers["max_line"] = np.full(nc.shape, line)
        test("max", _over(c.latency, np.full(nc.shape, line)), TAIL, bar, p99_c > line)
        if decide:
            within &= _provable_upper(c.latency, 1 - TAIL, bar) <= line
    if t.p99_ratio is not None:
        for name, q, point_c, point_s in (
            ("tail", 1 - TAIL, p99_c, p99_s),
            ("median", 0.5, med_c, med_s),
        ):
            bar = bars[name]
            half = bar + math.log(2)  # stable's bound and the candidate's test
            upper_s = _provable_upper(s.latency, q, half)
            ratio_line = np.maximum(upper_s * t.p99_ratio, upper_s + tol)
            looks_over = point_c > np.maximum(point_s * t.p99_ratio, point_s + tol)
            numbers[f"{name}_line"] = ratio_line
            numbers[f"{name}_stable_upper"] = upper_s
            test(name, _over(c.latency, ratio_line), 1 - q, half, looks_over)
            if decide:
                lower_s = _provable_lower(s.latency, q, half)
                allowed = np.maximum(lower_s * t.p99_ratio, lower_s + tol)
                within &= _provable_upper(c.latency, q, half) <= allowed
    value = np.where(np.isnan(p99_c), 0.0, p99_c)
    return Assessment("latency_p99", status, value, within, evidence, log_bar, t.p99_ratio, numbers)


def _drift(c: Counts, s: Counts, threshold: float, bar: float, decide: bool = True) -> Assessment:
    value = seq.psi(s.probability, c.probability, PSI_FLOOR)
    evidence = seq.log_e_homogeneity(c.probability, s.probability)
    over = np.nan_to_num(value) > threshold
    empty = (c.probability.sum(axis=1) == 0) & (s.probability.sum(axis=1) == 0)
    status = np.where(
        over & (evidence >= bar), FAIL, np.where(over | empty, INCONCLUSIVE, PASS)
    ).astype(np.int8)
    upper = _psi_upper(c.probability, s.probability, bar) if decide else np.full_like(value, np.inf)
    return Assessment(
        "psi",
        status,
        np.nan_to_num(value),
        (upper <= threshold) & ~empty,
        evidence,
        np.full(value.shape, bar),
        threshold,
        {
            "nc": c.probability.sum(axis=1),
            "ns": s.probability.sum(axis=1),
            "upper": upper,
            "empty": empty.astype(float),
        },  # fmt: skip
    )


def _share_bounds(bins: Array, bar: float) -> tuple[Array, Array]:
    """Each bin's share, within a confidence sequence (normal mixture, plug-in variance)."""
    n = bins.sum(axis=1, keepdims=True)
    share = _share(bins, n)
    smoothed = (bins + 0.5) / (n + 1)
    radius = seq.normal_mixture_radius(smoothed * (1 - smoothed) / np.maximum(n, 1), bar)
    return np.clip(share - radius, PSI_FLOOR, 1), np.clip(share + radius, PSI_FLOOR, 1)


def _psi_upper(c: Array, s: Array, bar: float) -> Array:
    """An upper confidence bound of PSI: each bin's term (c - s) ln(c / s) is convex, so its
    largest value over the box of the two shares' bounds is at a corner (Bonferroni over the
    bins and both sides; dropping the simplex constraint only raises it)."""
    step = bar + math.log(2 * c.shape[1])
    lc, uc = _share_bounds(c, step)
    ls, us = _share_bounds(s, step)

    def term(a: Array, b: Array) -> Array:
        return (a - b) * np.log(a / b)

    corners = np.maximum(
        np.maximum(term(lc, ls), term(lc, us)), np.maximum(term(uc, ls), term(uc, us))
    )
    return np.asarray(corners.sum(axis=1), dtype=float)


def _tier_counts(bins: Array) -> Array:
    return np.stack([bins[:, list(tier)].sum(axis=1) for tier in TIER_BINS], axis=1)


def _tiers(c: Counts, s: Counts, threshold: float, bar: float, min_count: float = 0) -> Assessment:
    mc, ms = _tier_counts(c.probability), _tier_counts(s.probability)
    nc, ns = mc.sum(axis=1, keepdims=True), ms.sum(axis=1, keepdims=True)
    pc, ps = _share(mc, nc), _share(ms, ns)
    # With three tiers, the total variation distance is the largest single tier's change.
    change = np.abs(pc - ps)
    shift = change.max(axis=1)
    vc, vs = (mc + 0.5) / (nc + 1), (ms + 0.5) / (ns + 1)
    variance = vc * (1 - vc) / np.maximum(nc, 1) + vs * (1 - vs) / np.maximum(ns, 1)
    tier_bar = bar + math.log(len(TIER_BINS))  # Bonferroni over the tiers
    radius = seq.normal_mixture_radius(variance, tier_bar)
    lower = np.maximum(change - radius, 0).max(axis=1)
    upper = (change + radius).max(axis=1)
    empty = (nc[:, 0] == 0) & (ns[:, 0] == 0)
    # The normal mixture is asymptotic (a plug-in variance): it fails nothing on fewer than
    # ``min_count`` customers a side, where the simulator found it could (2 of 2,000 A/A
    # rollouts at 10 requests a second, on a few dozen customers).
    proven = (lower > threshold) & (nc[:, 0] >= min_count) & (ns[:, 0] >= min_count)
    status = np.where(
        proven, FAIL, np.where((shift > threshold) | empty, INCONCLUSIVE, PASS)
    ).astype(np.int8)
    return Assessment(
        "tier_mix",
        status,
        shift,
        (upper <= threshold) & ~empty,
        np.where(proven, tier_bar, -np.inf),
        np.full(shift.shape, tier_bar),
        threshold,
        {
            "lower": lower,
            "upper": upper,
            "empty": empty.astype(float),
            **{f"c{i}": pc[:, i] for i in range(3)},
            **{f"s{i}": ps[:, i] for i in range(3)},
            "nc": nc[:, 0],
            "ns": ns[:, 0],
        },  # fmt: skip
    )


# --- one rollout: the batch of one row, in words ----------------------------------------------


def judge(
    candidate: VersionCounts,
    stable: VersionCounts,
    thresholds: RolloutThresholds,
    min_requests: int,
    *,
    budget: Budget | None = None,
    same_window: bool = True,
    horizon: bool = False,
) -> Verdict:
    """One verdict with every check in words. ``budget``: this window's share of the
    rollout's significance (all of it by default); ``same_window``: stable's counts are of
    the candidate's window (else a reference from an earlier one); ``horizon``: the step has
    reached its horizon and must be decided."""
    budget = budget or Budget(thresholds.significance)
    c, s = Counts.of(candidate), Counts.of(stable)
    checks = assess(c, s, thresholds, budget, same_window, min_requests=min_requests)
    nc, ns = candidate.requests, stable.requests
    final, statuses = combine(checks, enough_of(c, s, min_requests), horizon)
    status = STATUS_OF_CODE[int(final[0])]
    said = tuple(
        _in_words(a, STATUS_OF_CODE[int(code)])
        for a, code in zip(checks, statuses[:, 0], strict=True)
    )
    if status is Status.WAITING_FOR_SAMPLES:
        short = [f"{name} {n:.0f}" for name, n in (("candidate", nc), ("stable", ns))]
        reason = f"{', '.join(short)} requests; {min_requests} each before a pass"
        return Verdict(status, (), reason, nc, ns)
    if status is Status.HALTED:
        open_ = [f"{check.name}: {_unresolved(a)}" for a, check in zip(checks, said, strict=True)
                 if not a.within[0]]  # fmt: skip
        reason = "at its horizon, not provably within its allowances: " + "; ".join(open_)
        return Verdict(status, said, reason, nc, ns)
    if horizon and status is Status.PASS and any(c.status is not Status.PASS for c in said):
        reason = "at its horizon, every check provably within its allowance"
        return Verdict(status, said, reason, nc, ns)
    return _verdict(said, nc, ns)


def enough_of(c: Counts, s: Counts, min_requests: int) -> Flags:
    """Rows where both sides have ``min_requests``: a pass needs that much (a FAIL does not)."""
    return (c.requests >= min_requests) & (s.requests >= min_requests)


def _evidence(log_e: float) -> str:
    e = math.exp(min(log_e, 700.0))
    if e >= 1e6:
        return f"{e:.1e}"
    if e >= 10:
        return f"{e:,.0f}"
    return f"{e:.2g}"


def _bar(log_bar: float) -> str:
    return f"{math.exp(log_bar):,.0f}"


def _ms(seconds: float) -> str:
    return "-" if not math.isfinite(seconds) else f"{seconds * 1000:.4g} ms"


def _in_words(a: Assessment, status: Status) -> Check:
    v = {k: float(x[0]) for k, x in a.numbers.items()}
    e, b = float(a.evidence[0]), float(a.log_bar[0])
    value = float(a.value[0])
    if a.name == "error_rate":
        saved = f", {v['saved']:.0f} saved by fallback" if v["saved"] else ""
        head = (
            f"candidate {v['xc']:,.0f} errors in {v['nc']:,.0f} requests{saved} vs stable "
            f"{v['xs']:,.0f} in {v['ns']:,.0f}"
        )
        if v["same"]:
            said = f"{head}: evidence against equal rates {_evidence(e)}, rollback above {_bar(b)}"
        else:
            said = (
                f"{head} (its reference window; rate at most {v['stable_upper']:.2%}): evidence "
                f"the candidate's rate is above that {_evidence(e)}, rollback above {_bar(b)}"
            )
        if e >= b:
            said += ": worse than stable"
        elif e > LEAN:
            said += ": leaning worse, held until it is proven either way or the horizon"
        if a.threshold is not None:
            upper = float(seq.bernoulli_upper(v["xc"], v["nc"], v["ceiling_bar"]))
            said += (
                f"; against its ceiling {a.threshold:.2%}: evidence "
                f"{_evidence(v['ceiling_evidence'])}, rollback above {_bar(v['ceiling_bar'])} "
                f"(rate {value:.2%}, at most {upper:.2%})"
            )
            if v["ceiling_evidence"] >= v["ceiling_bar"]:
                said += ": provably above the ceiling"
            elif value > a.threshold:
                said += ": above the ceiling, not yet significantly"
        return Check(a.name, status, value, a.threshold, said, math.exp(min(e, 700)), math.exp(b))
    if a.name == "latency_p99":
        said = f"p99 {_ms(v['p99_c'])} vs stable {_ms(v['p99_s'])}, p50 {_ms(v['med_c'])} vs "
        said += f"{_ms(v['med_s'])}"
        parts = []
        for name, what in (("tail", "1%"), ("median", "half")):
            if f"{name}_line" in v:
                parts.append(
                    f"{v[f'{name}_over']:.0f} of {v['nc']:.0f} answers over "
                    f"{_ms(v[f'{name}_line'])} (stable's {'p99' if name == 'tail' else 'p50'} "
                    f"at most {_ms(v[f'{name}_stable_upper'])}, with the allowance): evidence of "
                    f"more than {what} {_evidence(v[f'{name}_evidence'])}"
                )
        if "max_line" in v:
            parts.append(
                f"{v['max_over']:.0f} over {_ms(v['max_line'])}: evidence of more than 1% "
                f"{_evidence(v['max_evidence'])}"
            )
        said += "; " + "; ".join(parts) + f"; rollback above {_bar(b)}" if parts else ""
        if status is Status.INCONCLUSIVE:
            said += "; slower than allowed, not provably yet"
        return Check(a.name, status, value, a.threshold, said, math.exp(min(e, 700)), math.exp(b))
    if a.name == "psi":
        if v["empty"]:
            said = (
                "no model_churn_probability series from the replicas (set thresholds.psi: null "
                "to judge without drift)"
            )
            return Check(a.name, status, None, a.threshold, said)
        said = (
            f"PSI {value:.3f} (at most {v['upper']:.3f}) over {v['nc']:,.0f} / {v['ns']:,.0f} "
            f"candidate / stable predictions: evidence the two differ {_evidence(e)}, rollback "
            f"above {_bar(b)} with PSI over {a.threshold}"
        )
        if status is Status.INCONCLUSIVE:
            said += f"; over {a.threshold}, not provably different yet"
        return Check(a.name, status, value, a.threshold, said, math.exp(min(e, 700)), math.exp(b))
    # tier_mix
    if v["empty"]:
        said = (
            "no model_churn_probability series from the replicas (set thresholds.tier_shift: "
            "null to judge without the tier mix)"
        )
        return Check(a.name, status, None, a.threshold, said)
    mix = "/".join(f"{v[f'c{i}']:.0%}" for i in range(3))
    mix += " vs stable " + "/".join(f"{v[f's{i}']:.0%}" for i in range(3))
    said = (
        f"low/medium/high {mix}: {value:.1%} of customers in another tier (between "
        f"{v['lower']:.1%} and {v['upper']:.1%}, rollback when even the lower bound is over "
        f"{a.threshold:.0%})"
    )
    if status is Status.INCONCLUSIVE:
        said += f"; over {a.threshold:.0%}, not provably yet"
    return Check(a.name, status, value, a.threshold, said)


def _unresolved(a: Assessment) -> str:
    v = {k: float(x[0]) for k, x in a.numbers.items()}
    if a.name == "error_rate":
        said = []
        if a.evidence[0] >= a.log_bar[0] / 2:
            said.append(
                f"errors lean worse than stable's (evidence {_evidence(a.evidence[0])}, "
                f"rollback above {_bar(a.log_bar[0])})"
            )
        if a.threshold is not None and v["ceiling_evidence"] < v["ceiling_bar"]:
            upper = float(seq.bernoulli_upper(v["xc"], v["nc"], v["ceiling_bar"]))
            if upper > a.threshold:
                said.append(f"rate {float(a.value[0]):.2%}, at most {upper:.2%}, against the "
                            f"ceiling {a.threshold:.2%}")  # fmt: skip
        return ", ".join(said) or "undecided"
    if a.name == "latency_p99":
        return "the buckets do not prove the candidate's p99 and p50 within the allowance"
    if a.name == "psi":
        return f"PSI {float(a.value[0]):.3f}, at most {v['upper']:.3f} against {a.threshold}"
    return (
        f"{float(a.value[0]):.1%} of customers in another tier, between {v['lower']:.1%} and "
        f"{v['upper']:.1%} against {a.threshold:.0%}"
    )


def _verdict(checks: Sequence[Check], nc: float, ns: float) -> Verdict:
    for status in (Status.FAIL, Status.WAITING_FOR_SAMPLES, Status.INCONCLUSIVE):
        named = [c for c in checks if c.status is status]
        if named:
            reason = "; ".join(f"{c.name}: {c.detail}" for c in named)
            return Verdict(status, tuple(checks), reason, nc, ns)
    # The headline comparison in words even when all is well: what was compared, how strong.
    errors = next((c for c in checks if c.name == "error_rate"), None)
    said = f" ({errors.detail})" if errors is not None else ""
    return Verdict(Status.PASS, tuple(checks), f"every check passed{said}", nc, ns)


def quantile_from_buckets(
    q: float, cumulative: Sequence[float], bounds: Sequence[float] = LATENCY_BOUNDS
) -> float | None:
    """The q-quantile of a cumulative histogram (last count is +Inf); None with no samples."""
    return histogram_quantile(q, bounds, cumulative)


def tier_mix(bins: Sequence[float]) -> tuple[float, ...]:
    """Customers per risk tier, from the ten probability bins."""
    return tuple(sum(bins[i] for i in tier) for tier in TIER_BINS)


# --- the shadow bake and the reference window ----------------------------------------------


def judge_shadow(
    candidate: VersionCounts,
    bake: ShadowBakeSpec,
    significance: float,
    *,
    horizon: bool = False,
) -> Verdict:
    """The shadow bake: the candidate's answers to mirrored requests against the answers the
    clients got, row by row (the gateway's shadow comparison); ``significance`` is the bake's
    share of the rollout's.

    - tier agreement: the share of compared rows whose risk tier both gave; failed when the
      Bernoulli mixture proves it below ``min_tier_agreement`` (anytime-valid), inconclusive
      when it is below but not provably;
    - PSI of the shadow's probability bins against the clients': as the live drift check. The
      two sides are the same customers, so the test, made for independent samples, is
      conservative: paired answers differ less by chance than two groups of customers do.
    Half the significance each when both are on."""
    tiers = candidate.shadow_tiers
    compared = sum(tiers)
    if compared < bake.min_comparisons and not horizon:
        return Verdict(
            Status.WAITING_FOR_SAMPLES,
            (),
            f"{compared:.0f} shadow comparisons; {bake.min_comparisons} before any verdict",
            compared,
            compared,
        )
    side = int(math.isqrt(len(tiers)))
    agreed = sum(tiers[i * side + i] for i in range(side))
    share = agreed / compared if compared else 0.0
    log_bar = math.log((2 if bake.psi is not None else 1) / significance)
    floor = bake.min_tier_agreement
    below = float(seq.log_e_below(agreed, compared, floor))
    lower = float(seq.bernoulli_lower(agreed, compared, log_bar))
    said = (
        f"tiers agree on {share:.1%} of {compared:.0f} compared rows (at least {lower:.1%}): "
        f"evidence of less than {floor:.0%} {_evidence(below)}, rollback above {_bar(log_bar)}"
    )
    bar_e, e = math.exp(log_bar), math.exp(min(below, 700))
    if below >= log_bar:
        agreement = Check("tier_agreement", Status.FAIL, share, floor, said, e, bar_e)
    elif share < floor:
        detail = f"{said}; below {floor:.0%}, not provably yet"
        agreement = Check("tier_agreement", Status.INCONCLUSIVE, share, floor, detail, e, bar_e)
    else:
        agreement = Check("tier_agreement", Status.PASS, share, floor, said, e, bar_e)
    checks = [agreement]
    within = lower >= floor
    if bake.psi is not None:
        c = np.array([candidate.shadow_bins], dtype=float)
        s = np.array([candidate.shadow_client_bins], dtype=float)
        drift = _drift(
            Counts(np.zeros(1), np.zeros(1), np.zeros(1), np.zeros((1, 14)), c),
            Counts(np.zeros(1), np.zeros(1), np.zeros(1), np.zeros((1, 14)), s),
            bake.psi,
            log_bar,
        )
        check = _in_words(drift, STATUS_OF_CODE[int(drift.status[0])])
        checks.append(replace(check, name="shadow_psi", detail=check.detail.replace(
            "candidate / stable predictions", "shadow / client answers")))  # fmt: skip
        within = within and bool(drift.within[0])
    verdict = _verdict(checks, compared, compared)
    if horizon and verdict.status is not Status.PASS and verdict.status is not Status.FAIL:
        if within:
            return Verdict(
                Status.PASS, tuple(checks), "at its horizon, provably within", compared, compared
            )
        return Verdict(
            Status.HALTED,
            tuple(checks),
            "at its horizon, not provably within its allowances: "
            + "; ".join(f"{c.name}: {c.detail}" for c in checks if c.status is not Status.PASS),
            compared,
            compared,
        )
    return verdict


def judge_reference(stable: VersionCounts, min_requests: int) -> Verdict:
    """A window of stable alone, to judge a candidate against where stable will then serve
    nothing (a blue/green flip): it needs only enough of stable's answers."""
    ns = stable.requests
    if ns < min_requests:
        reason = f"stable {ns:.0f} requests; {min_requests} for a reference before the flip"
        return Verdict(Status.WAITING_FOR_SAMPLES, (), reason, 0, ns)
    return Verdict(Status.PASS, (), f"stable's reference: {ns:.0f} requests", 0, ns)
