"""Candidate against stable: each difference and its variance against an independent
computation, and the intervals' coverage by simulation against the pool's exact differences."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from outcomes.quality.compare import compare_paired, compare_unpaired
from outcomes.quality.metrics import roc_auc
from tests.outcomes.quality.synthetic import draw_customers, noisy, population_auc
from tests.outcomes.quality.test_metrics import structural_components

TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def pool():  # type: ignore[no-untyped-def]
    """A pool of customers, their true probability, and two models scoring each of them: a
    good one (the log-odds with noise 0.5) and a worse one (noise 1.0)."""
    customers = draw_customers(200_000, seed=31)
    rng = np.random.default_rng(32)
    truth = customers.true_probability
    return truth, noisy(truth, 0.5, rng), noisy(truth, 1.0, rng)


def test_unpaired_adds_the_two_delong_variances(pool) -> None:  # type: ignore[no-untyped-def]
    truth, good, worse = pool
    rng = np.random.default_rng(1)
    yc = rng.random(3000) < truth[:3000]
    ys = rng.random(5000) < truth[3000:8000]
    c = compare_unpaired(worse[:3000], yc, good[3000:8000], ys, candidate="c", stable="s")
    assert (c.design, c.n_candidate, c.n_stable) == ("unpaired", 3000, 5000)
    assert (c.churned_candidate, c.churned_stable) == (int(yc.sum()), int(ys.sum()))
    assert c.auc is not None and c.brier is not None
    expected = roc_auc_score(yc, worse[:3000]) - roc_auc_score(ys, good[3000:8000])
    assert c.auc.estimate == pytest.approx(expected, abs=TOLERANCE)
    auc_c, auc_s = roc_auc(worse[:3000], yc), roc_auc(good[3000:8000], ys)
    assert auc_c is not None and auc_s is not None
    assert c.auc.variance == pytest.approx(auc_c.variance + auc_s.variance, rel=1e-12)
    brier = brier_score_loss(yc, worse[:3000]) - brier_score_loss(ys, good[3000:8000])
    assert c.brier.estimate == pytest.approx(brier, abs=TOLERANCE)
    ec, es = (worse[:3000] - yc) ** 2, (good[3000:8000] - ys) ** 2
    assert c.brier.variance == pytest.approx(
        np.var(ec, ddof=1) / 3000 + np.var(es, ddof=1) / 5000, rel=1e-12
    )


def test_paired_variance_equals_the_definition(pool) -> None:  # type: ignore[no-untyped-def]
    """Var(AUC_c - AUC_s) of the same customers: the O(n^2) components' differences,
    var(V10_c - V10_s) / m + var(V01_c - V01_s) / n."""
    truth, good, worse = pool
    rng = np.random.default_rng(2)
    y = rng.random(600) < truth[:600]
    scores = np.vstack([worse[:600], good[:600]])
    v10, v01 = structural_components(scores, y)
    m, n = v10.shape[1], v01.shape[1]
    variance = np.var(v10[0] - v10[1], ddof=1) / m + np.var(v01[0] - v01[1], ddof=1) / n
    c = compare_paired(worse[:600], good[:600], y)
    assert c.auc is not None and c.brier is not None
    assert c.auc.estimate == pytest.approx(
        roc_auc_score(y, worse[:600]) - roc_auc_score(y, good[:600]), abs=TOLERANCE
    )
    assert c.auc.variance == pytest.approx(variance, rel=1e-10)
    d = (worse[:600] - y) ** 2 - (good[:600] - y) ** 2
    assert c.brier.estimate == pytest.approx(d.mean(), abs=TOLERANCE)
    assert c.brier.variance == pytest.approx(np.var(d, ddof=1) / 600, rel=1e-12)
    assert c.auc_correlation is not None and 0 < c.auc_correlation < 1
    assert (c.n_candidate, c.n_stable) == (600, 600)


def test_not_enough_for_an_auc() -> None:
    c = compare_paired([0.1, 0.9, 0.3], [0.2, 0.8, 0.4], [False, True, False])
    assert c.auc is None and c.brier is not None
    u = compare_unpaired([0.1], [True], [0.2, 0.3], [False, True])
    assert u.auc is None and u.brier is None


def test_intervals_of_the_differences_cover_the_truth(pool) -> None:  # type: ignore[no-untyped-def]
    """1,000 replicates per design (coverage within [0.93, 0.97], about three binomial standard
    errors from 0.95). The truth: the pool's exact AUCs and expected Brier scores,
    E(y - p)^2 = q (1 - p)^2 + (1 - q) p^2 for a customer with true probability q."""
    truth, good, worse = pool
    auc_truth = population_auc(worse, truth) - population_auc(good, truth)

    def expected_brier(p: np.ndarray) -> float:
        return float(np.mean(truth * (1 - p) ** 2 + (1 - truth) * p**2))

    brier_truth = expected_brier(worse) - expected_brier(good)
    rng = np.random.default_rng(3)
    replicates = 1000
    hits = {"paired auc": 0, "paired brier": 0, "unpaired auc": 0, "unpaired brier": 0}
    for _ in range(replicates):
        pick = rng.integers(0, truth.size, 2000)
        y = rng.random(2000) < truth[pick]
        paired = compare_paired(worse[pick], good[pick], y)
        unpaired = compare_unpaired(worse[pick[:1000]], y[:1000], good[pick[1000:]], y[1000:])
        for name, c in (("paired", paired), ("unpaired", unpaired)):
            assert c.auc is not None and c.brier is not None
            low, high = c.auc.interval()
            hits[f"{name} auc"] += low <= auc_truth <= high
            low, high = c.brier.interval()
            hits[f"{name} brier"] += low <= brier_truth <= high
    coverage = {name: count / replicates for name, count in hits.items()}
    assert all(0.93 <= value <= 0.97 for value in coverage.values()), coverage
