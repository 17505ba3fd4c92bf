"""The anytime-valid statistics against references: scipy, and Monte Carlo of the guarantee
itself (the chance that a true null is ever rejected over many looks stays under alpha)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import betaln

from measures.psi import PSI_FLOOR
from measures.psi import psi as gateway_psi
from rollout import sequential as seq


def test_the_bernoulli_mixture_is_the_mean_of_binomial_likelihood_ratios() -> None:
    # Against scipy's binomial pmf, component by component.
    x, n, p0 = 7, 40, 0.05
    ratios = []
    for r in seq.ODDS_RATIOS:
        odds = p0 / (1 - p0) * r
        p = odds / (1 + odds)
        ratios.append(stats.binom.pmf(x, n, p) / stats.binom.pmf(x, n, p0))
    assert float(seq.log_e_above(x, n, p0)) == pytest.approx(math.log(np.mean(ratios)))
    # The mirror: evidence that a share is below p0 is evidence that its complement is above.
    assert float(seq.log_e_below(2, 400, 0.02)) == pytest.approx(
        float(seq.log_e_above(398, 400, 0.98))
    )


def test_the_bernoulli_mixture_rejects_a_true_null_at_most_alpha_over_every_look() -> None:
    # 3000 sequences of 2000 trials at the null's share, looked at after every 5th trial.
    rng = np.random.default_rng(1)
    alpha, p0 = 0.05, 0.02
    draws = rng.random((3000, 2000)) < p0
    successes = np.cumsum(draws, axis=1)[:, 4::5]
    n = np.arange(5, 2001, 5)
    ever = (seq.log_e_above(successes, n, p0) >= math.log(1 / alpha)).any(axis=1)
    assert ever.mean() <= alpha
    # And it has power: at twice the share, most sequences are rejected.
    worse = np.cumsum(rng.random((1000, 2000)) < 2 * p0, axis=1)[:, 4::5]
    assert (seq.log_e_above(worse, n, p0) >= math.log(1 / alpha)).any(axis=1).mean() > 0.8


def test_the_bounds_of_a_share_cover_it_at_every_look() -> None:
    rng = np.random.default_rng(2)
    p, bar = 0.1, math.log(20)  # 95%
    successes = np.cumsum(rng.random((2000, 500)) < p, axis=1)
    n = np.arange(1, 501)
    lower = seq.bernoulli_lower(successes[:, ::10], n[::10], bar)
    upper = seq.bernoulli_upper(successes[:, ::10], n[::10], bar)
    # Each bound is one-sided at its level.
    assert (lower > p).any(axis=1).mean() <= 0.05
    assert (upper < p).any(axis=1).mean() <= 0.05
    # They are the points where the e-value reaches the bar.
    assert float(seq.log_e_above(30, 100, seq.bernoulli_lower(30, 100, bar))) == pytest.approx(
        bar, abs=1e-6
    )


def test_the_homogeneity_mixture_is_a_beta_binomial_per_bin_and_holds_its_level() -> None:
    c, s = np.array([3.0, 9.0, 1.0]), np.array([40.0, 70.0, 30.0])
    theta = c.sum() / (c.sum() + s.sum())
    k = max(4 * max((1 - theta) / theta, theta / (1 - theta)), 2.0)
    a, b = k * theta, k * (1 - theta)
    # Per bin: the beta-binomial marginal likelihood over the binomial at theta.
    expected = sum(
        betaln(x + a, y + b) - betaln(a, b) - x * math.log(theta) - y * math.log(1 - theta)
        for x, y in zip(c, s, strict=True)
    )
    assert float(seq.log_e_homogeneity(c, s)) == pytest.approx(expected)
    # Monte Carlo: one distribution, a tenth of it the candidate's, looked at every 20.
    rng = np.random.default_rng(3)
    probs = np.array([0.05, 0.1, 0.2, 0.3, 0.2, 0.1, 0.05])
    bins = rng.choice(len(probs), size=(1000, 1500), p=probs)
    mine = rng.random((1000, 1500)) < 0.1
    onehot = np.eye(len(probs))[bins]
    cand = np.cumsum(onehot * mine[..., None], axis=1)[:, ::20]
    stab = np.cumsum(onehot * ~mine[..., None], axis=1)[:, ::20]
    ever = (seq.log_e_homogeneity(cand, stab) >= math.log(20)).any(axis=1).mean()
    assert ever <= 0.05


def test_the_normal_mixture_radius_covers_a_mean_at_every_look() -> None:
    rng = np.random.default_rng(4)
    p = 0.3
    n = np.arange(20, 3001, 20)
    x = np.cumsum(rng.random((2000, 3000)) < p, axis=1)[:, n - 1]
    share = x / n
    radius = seq.normal_mixture_radius(share * (1 - share) / n, math.log(20))
    assert (np.abs(share - p) > radius).any(axis=1).mean() <= 0.05
    # Against the fixed-sample normal interval at the same level it is wider, not absurdly.
    fixed = stats.norm.ppf(0.975) * math.sqrt(p * (1 - p) / 1000)
    assert fixed < float(seq.normal_mixture_radius(p * (1 - p) / 1000, math.log(20))) < 3 * fixed


def test_psi_of_a_batch_is_the_gateway_s_psi() -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(0, 30, size=(20, 10)).astype(float)
    b = rng.integers(0, 30, size=(20, 10)).astype(float)
    a[0, :5] = 0
    batch = seq.psi(a, b, PSI_FLOOR)
    for row_a, row_b, value in zip(a, b, batch, strict=True):
        assert value == pytest.approx(gateway_psi(row_a.tolist(), row_b.tolist()))
    assert np.isnan(seq.psi(np.zeros(10), np.ones(10), PSI_FLOOR))
