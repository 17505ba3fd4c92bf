"""Latency from histogram buckets: quantiles, their provable bounds, the answers over a line,
and the check of the candidate's p99 and median against stable's and ``p99_max_ms``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from measures.quantile import histogram_quantile
from rollout import sequential as seq
from rollout.checks.base import Array, Assessment, Counts, Flags
from rollout.counts import LATENCY_BOUNDS
from rollout.verdict import FAIL, INCONCLUSIVE, PASS
from routing_config.rollout_plan import RolloutThresholds

__all__ = ["TAIL", "answers_within", "assess_latency", "quantile_from_buckets", "quantiles"]

TAIL = 0.01  # the share of answers a p99 leaves above it
_BOUNDS = np.array(LATENCY_BOUNDS, dtype=float)


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


def assess_latency(
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


def quantile_from_buckets(
    q: float, cumulative: Sequence[float], bounds: Sequence[float] = LATENCY_BOUNDS
) -> float | None:
    """The q-quantile of a cumulative histogram (last count is +Inf); None with no samples."""
    return histogram_quantile(q, bounds, cumulative)
