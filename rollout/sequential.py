"""Anytime-valid statistics: evidence that stays honest however often it is looked at.

Every function takes numpy arrays (or numbers) and works element by element, so the judge runs
the same code on one rollout's counts and the simulator on thousands at once.

The evidence is an e-value: a nonnegative number whose expectation is at most 1 when the null
hypothesis holds, computed from the cumulative counts so far. The e-values here are mixtures of
likelihood ratios, which are (super)martingales under the null as counts grow, so by Ville's
inequality the chance that one *ever* reaches 1/alpha, at any of any number of looks, is at most
alpha (Robbins, "Statistical methods related to the law of the iterated logarithm", 1970;
Howard, Ramdas, McAuliffe, Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence
sequences", Ann. Statist. 2021; Johari, Koomen, Pekelis, Walsh, "Always valid inference", Oper.
Res. 2022). The set of parameter values none of whose e-values reached 1/alpha is a confidence
sequence: it covers the truth at every look at once, so a bound read at a data-dependent moment
(a step's end, the horizon) keeps its level.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from scipy.special import betaln

__all__ = [
    "ODDS_RATIOS",
    "bernoulli_lower",
    "bernoulli_upper",
    "log_e_above",
    "log_e_below",
    "log_e_homogeneity",
    "normal_mixture_radius",
    "psi",
]

Array = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

# The alternatives of the Bernoulli mixture: shares whose odds are the null's times these, with
# equal weights. A discrete mixture of likelihood ratios is a martingale as each one is; the grid
# spans half as much again to twenty times the odds, so a small excess is found on much data and
# a large one on a few events (the price of the mixture over knowing the ratio: log 6, 1.8
# nats). Chosen with the simulator: a wider grid (1.25 to 100) needed a few more requests to
# stop a candidate with 10 times stable's errors, a narrower one (2 to 20) lost power on 3 times.
ODDS_RATIOS = np.array([1.5, 2.0, 3.0, 5.0, 10.0, 20.0])
_EDGE = 1e-12


def log_e_above(successes: ArrayLike, n: ArrayLike, p0: ArrayLike) -> Array:
    """Log e-value against "the share of successes is at most ``p0``", after ``successes`` of
    ``n`` independent trials: the mean over ODDS_RATIOS of the likelihood ratios of the share
    with ``p0``'s odds times the ratio to ``p0`` itself.

    Each ratio's likelihood ratio is a martingale when the share is ``p0`` and a supermartingale
    when it is lower (its alternatives all lie above), so the mixture is an e-process for the
    one-sided null (Ville's inequality: P(ever >= 1/alpha) <= alpha)."""
    x = np.asarray(successes, dtype=float)[..., None]
    m = np.asarray(n, dtype=float)[..., None] - x
    base = np.clip(np.asarray(p0, dtype=float), _EDGE, 1 - _EDGE)[..., None]
    odds = base / (1 - base) * ODDS_RATIOS
    alt = odds / (1 + odds)
    log_ratio = x * np.log(alt / base) + m * np.log((1 - alt) / (1 - base))
    top = log_ratio.max(axis=-1)
    mean = np.exp(log_ratio - top[..., None]).mean(axis=-1)
    return np.asarray(top + np.log(mean), dtype=float)


def log_e_below(successes: ArrayLike, n: ArrayLike, p0: ArrayLike) -> Array:
    """Log e-value against "the share is at least ``p0``" (the mirror of ``log_e_above``)."""
    x, total = np.asarray(successes, dtype=float), np.asarray(n, dtype=float)
    return log_e_above(total - x, total, 1 - np.asarray(p0, dtype=float))


def _bisect(
    inside: npt.NDArray[np.bool_] | None,
    low: Array,
    high: Array,
    keeps_low: Callable[[Array], npt.NDArray[np.bool_]],
    steps: int = 40,
) -> Array:
    """Bisection on every element at once: ``keeps_low(mid)`` true moves ``low`` up."""
    for _ in range(steps):
        mid = (low + high) / 2
        up = keeps_low(mid)
        low, high = np.where(up, mid, low), np.where(up, high, mid)
    return low if inside is None else np.where(inside, low, high)


def bernoulli_lower(successes: ArrayLike, n: ArrayLike, log_bar: ArrayLike) -> Array:
    """The confidence sequence's lower bound of a share: the largest ``p0`` that
    ``log_e_above`` rejects at ``log_bar`` (0 when none is)."""
    x = np.asarray(successes, dtype=float)
    total = np.asarray(n, dtype=float)
    bar = np.asarray(log_bar, dtype=float)
    x, total, bar = np.broadcast_arrays(x, total, bar)
    share = np.where(total > 0, x / np.maximum(total, 1), 0.0)
    low = np.zeros_like(share)
    return _bisect(None, low, share.copy(), lambda p: log_e_above(x, total, p) >= bar)


def bernoulli_upper(successes: ArrayLike, n: ArrayLike, log_bar: ArrayLike) -> Array:
    """The confidence sequence's upper bound of a share (1 when nothing is rejected)."""
    x = np.asarray(successes, dtype=float)
    total = np.asarray(n, dtype=float)
    return 1 - bernoulli_lower(total - x, total, log_bar)


def log_e_homogeneity(candidate: ArrayLike, stable: ArrayLike, concentration: float = 4.0) -> Array:
    """Log e-value against "both sides draw from one distribution over the bins" (last axis).

    Conditional on an observation falling in a bin, under the null it is the candidate's with
    the same probability in every bin, its share of all observations, theta0. Per bin, a beta
    mixture (mean theta0, prior sd about ``1/sqrt(concentration)`` of theta0 on the odds scale)
    of the binomial likelihood ratio; the product over bins is a martingale because each
    observation moves one factor, whose expectation given its bin is 1 under the null
    (Lindon and Malek, "Anytime-valid inference for multinomial count data", NeurIPS 2022).
    theta0 is the observed share, which fits the null exactly in total: conservative."""
    c = np.asarray(candidate, dtype=float)
    s = np.asarray(stable, dtype=float)
    nc, ns = c.sum(axis=-1, keepdims=True), s.sum(axis=-1, keepdims=True)
    theta = np.clip(nc / np.maximum(nc + ns, 1), 1e-9, 1 - 1e-9)
    # Relative prior spread of about 1/sqrt(concentration) on the rarer side's share.
    k = np.maximum(concentration * np.maximum((1 - theta) / theta, theta / (1 - theta)), 2.0)
    a, b = k * theta, k * (1 - theta)
    per_bin = betaln(c + a, s + b) - betaln(a, b) - c * np.log(theta) - s * np.log(1 - theta)
    out = per_bin.sum(axis=-1)
    return np.asarray(np.where((nc + ns)[..., 0] > 0, out, 0.0), dtype=float)


def normal_mixture_radius(variance: ArrayLike, log_bar: ArrayLike, rho: float = 100.0) -> Array:
    """Half-width of a two-sided confidence sequence for a mean estimated with ``variance``,
    at level exp(-log_bar): Robbins' normal mixture boundary in intrinsic time I = 1/variance,
    |S_I| <= sqrt((I + rho) (log(1 + I/rho) + 2 log_bar)) for S = I (estimate - mean)
    (Howard et al. 2021, the normal mixture; with a plug-in variance it is an asymptotic
    confidence sequence: Waudby-Smith, Arbour, Sinha, Kennedy, Ramdas, "Time-uniform central
    limit theory", 2021). ``rho`` tunes where it is tightest (about I = 100 to 10,000 here)."""
    v = np.maximum(np.asarray(variance, dtype=float), 1e-15)
    info = 1 / v
    bar = np.asarray(log_bar, dtype=float)
    return np.asarray(np.sqrt((info + rho) * (np.log1p(info / rho) + 2 * bar)) / info, dtype=float)


def psi(expected: ArrayLike, actual: ArrayLike, floor: float) -> Array:
    """Population stability index over the last axis, each share at least ``floor`` (as
    gateway.shadow.compare.psi computes one); nan where a side is empty."""
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    ne, na = e.sum(axis=-1, keepdims=True), a.sum(axis=-1, keepdims=True)
    es = np.maximum(e / np.maximum(ne, 1e-300), floor)
    as_ = np.maximum(a / np.maximum(na, 1e-300), floor)
    value = ((as_ - es) * np.log(as_ / es)).sum(axis=-1)
    empty = (ne[..., 0] <= 0) | (na[..., 0] <= 0)
    return np.asarray(np.where(empty, np.nan, value), dtype=float)
