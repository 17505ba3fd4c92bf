"""Quality metrics against the truth: customers of the training generator with their true churn
probability, outcomes drawn from it, and every metric equal to scikit-learn's or numpy's on the
same (probability, outcome) pairs; DeLong's variance equal to its O(n^2) definition; the 95%
interval's coverage measured by simulation."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from model_server.train import DATA_SEED, generate_dataset
from outcomes.quality import metrics
from tests.outcomes.quality.synthetic import draw_customers, noisy, population_auc
from vocabulary.buckets import PROBABILITY_BOUNDS
from vocabulary.tiers import TIER_EDGES, tier_of

TOLERANCE = 1e-9


def structural_components(
    scores: npt.NDArray[np.float64], churned: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """DeLong's definition, every churner against every stayer: psi(x, y) = 1 if x > y, 1/2 if
    equal, 0 otherwise; V10 averages psi over stayers, V01 over churners. O(n^2)."""
    x = scores[:, churned][:, :, None]
    y = scores[:, ~churned][:, None, :]
    psi = (x > y) + 0.5 * (x == y)
    return psi.mean(axis=2), psi.mean(axis=1)


def reference_covariance(
    scores: npt.NDArray[np.float64], churned: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    v10, v01 = structural_components(scores, churned)
    m, n = v10.shape[1], v01.shape[1]
    return v10.mean(axis=1), np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n


@pytest.fixture(scope="module")
def labelled() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """20,000 fresh customers (not the training seed), their true probability, and outcomes."""
    customers = draw_customers(20_000, seed=1234)
    rng = np.random.default_rng(99)
    churned = rng.random(customers.true_probability.size) < customers.true_probability
    return customers.true_probability, churned


def test_synthetic_matches_the_training_generator() -> None:
    features, labels = generate_dataset(rows=3000, seed=DATA_SEED)
    customers = draw_customers(3000, DATA_SEED)
    assert np.array_equal(customers.features, features)
    assert np.array_equal(customers.churned.astype(np.int64), labels)
    assert 0 < customers.true_probability.min() < customers.true_probability.max() < 1


@pytest.mark.parametrize("model", ["truth", "noisy", "rounded"])
def test_metrics_equal_scikit_learn_on_the_same_pairs(labelled, model) -> None:  # type: ignore[no-untyped-def]
    truth, churned = labelled
    rng = np.random.default_rng(5)
    p = {
        "truth": truth,
        "noisy": noisy(truth, 1.0, rng),
        # Two decimals: thousands of ties, which AUC counts a half.
        "rounded": np.round(truth, 2),
    }[model]
    q = metrics.version_quality(p, churned)
    assert q.labelled == p.size
    assert q.churned == int(churned.sum())
    assert q.churn_rate == pytest.approx(churned.mean(), abs=TOLERANCE)
    assert q.auc is not None
    assert q.auc.value == pytest.approx(roc_auc_score(churned, p), abs=TOLERANCE)
    assert q.brier == pytest.approx(brier_score_loss(churned, p), abs=TOLERANCE)
    assert q.log_loss == pytest.approx(log_loss(churned, p), abs=TOLERANCE)

    # Calibration: scikit-learn's uniform bins are ours (upper bounds inclusive); its points
    # are the non-empty bins' (observed rate, mean probability).
    assert q.calibration is not None
    prob_true, prob_pred = calibration_curve(churned, p, n_bins=10, strategy="uniform")
    filled = [b for b in q.calibration.bins if b.count]
    assert [b.observed_rate for b in filled] == pytest.approx(list(prob_true), abs=TOLERANCE)
    assert [b.mean_probability for b in filled] == pytest.approx(list(prob_pred), abs=TOLERANCE)
    edges = np.linspace(0.0, 1.0, 11)
    index = np.searchsorted(edges[1:-1], p, side="left")
    counts = np.bincount(index, minlength=10)
    assert [b.count for b in q.calibration.bins] == list(counts)
    ece = float(np.sum(counts[counts > 0] / p.size * np.abs(prob_true - prob_pred)))
    assert q.calibration.expected_calibration_error == pytest.approx(ece, abs=TOLERANCE)

    # Churn per tier, by the vocabulary's own tier_of, one customer at a time.
    tiers = np.array([tier_of(float(v)) for v in p])
    for rate in q.tiers:
        mine = tiers == rate.tier
        assert rate.count == int(mine.sum())
        assert rate.churned == int(churned[mine].sum())
        assert rate.observed_rate == pytest.approx(churned[mine].mean(), abs=TOLERANCE)
        assert rate.mean_probability == pytest.approx(p[mine].mean(), abs=TOLERANCE)


def test_the_truth_is_calibrated_and_high_is_high(labelled) -> None:  # type: ignore[no-untyped-def]
    truth, churned = labelled
    q = metrics.version_quality(truth, churned)
    assert q.calibration is not None
    assert q.calibration.expected_calibration_error < 0.02
    low, medium, high = (t.observed_rate for t in q.tiers)
    assert low is not None and medium is not None and high is not None
    assert low < TIER_EDGES[0] <= medium < TIER_EDGES[1] <= high


def test_edges_and_clipping_as_scikit_learn() -> None:
    # Probabilities on the bin and tier edges, and certain ones that log loss must clip.
    p = np.array([0.0, 0.1, 0.3, 0.6, 0.9, 1.0, 1.0, 0.0, 0.5, 0.3])
    y = np.array([0, 0, 1, 1, 1, 1, 0, 1, 0, 0], dtype=bool)
    assert metrics.log_loss(p, y) == pytest.approx(log_loss(y, p), abs=TOLERANCE)
    assert metrics.brier_score(p, y) == pytest.approx(brier_score_loss(y, p), abs=TOLERANCE)
    cal = metrics.calibration(p, y)
    assert cal is not None
    assert [b.count for b in cal.bins] == [3, 0, 2, 0, 1, 1, 0, 0, 1, 2]  # upper bounds inclusive
    assert [b.upper for b in cal.bins] == list(PROBABILITY_BOUNDS)
    tiers = metrics.tier_rates(p, y)
    assert [t.count for t in tiers] == [3, 3, 4]  # 0.3 and 0.6 are in the higher tier


def test_delong_equals_its_definition_on_a_small_sample() -> None:
    rng = np.random.default_rng(11)
    customers = draw_customers(400, seed=77)
    churned = rng.random(400) < customers.true_probability
    scores = np.vstack(
        [
            customers.true_probability,
            noisy(customers.true_probability, 0.8, rng),
            np.round(customers.true_probability, 1),  # heavy ties
        ]
    )
    aucs, covariance = metrics.delong(scores, churned)
    ref_aucs, ref_covariance = reference_covariance(scores, churned)
    assert aucs == pytest.approx(ref_aucs, abs=1e-12)
    assert covariance == pytest.approx(ref_covariance, abs=1e-15)
    for r in range(3):
        auc = metrics.roc_auc(scores[r], churned)
        assert auc is not None
        assert auc.variance == pytest.approx(ref_covariance[r, r], abs=1e-15)


def test_delong_equals_sun_and_xu_midrank_formulas() -> None:
    # The components from one sort equal Sun and Xu's, written with three midrank calls.
    rng = np.random.default_rng(3)
    p = np.round(rng.random(5000), 3)
    y = rng.random(5000) < p
    x, w = p[y], p[~y]
    m, n = x.size, w.size
    tz = metrics.midranks(np.concatenate([x, w]))
    v10 = (tz[:m] - metrics.midranks(x)) / n
    v01 = 1 - (tz[m:] - metrics.midranks(w)) / m
    variance = v10.var(ddof=1) / m + v01.var(ddof=1) / n
    auc = (tz[:m].sum() - m * (m + 1) / 2) / (m * n)
    (mine,), cov = metrics.delong(p, y)
    assert mine == pytest.approx(auc, abs=1e-12)
    assert cov[0, 0] == pytest.approx(variance, rel=1e-10)


def test_midranks_average_ties() -> None:
    assert list(metrics.midranks(np.array([3.0, 1.0, 3.0, 2.0, 3.0]))) == [4, 1, 4, 2, 4]


def test_undefined_until_both_outcomes_are_seen() -> None:
    empty = metrics.version_quality([], [])
    assert (empty.labelled, empty.auc, empty.brier, empty.calibration) == (0, None, None, None)
    one_churner = metrics.version_quality([0.2, 0.9, 0.4], [False, True, False])
    assert one_churner.auc is None
    assert one_churner.brier is not None


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="2 probabilities but 1 outcomes"):
        metrics.version_quality([0.1, 0.2], [True])
    with pytest.raises(ValueError, match="within"):
        metrics.version_quality([1.2], [True])
    with pytest.raises(ValueError, match="within"):
        metrics.version_quality([np.nan], [True])
    with pytest.raises(ValueError, match="true/false"):
        metrics.version_quality([0.1], [2])


def test_auc_interval_covers_the_truth_95_percent_of_the_time() -> None:
    """2,000 samples of 1,000 customers from a pool of 200,000; the truth is the pool's exact
    AUC (population_auc). Coverage within [0.93, 0.97] (about four binomial standard errors
    from 0.95 for 2,000 replicates)."""
    pool = draw_customers(200_000, seed=2024)
    rng = np.random.default_rng(8)
    for score in (pool.true_probability, noisy(pool.true_probability, 1.0, rng)):
        truth = population_auc(score, pool.true_probability)
        covered = 0
        replicates = 2000
        for _ in range(replicates):
            pick = rng.integers(0, score.size, 1000)
            churned = rng.random(1000) < pool.true_probability[pick]
            auc = metrics.roc_auc(score[pick], churned)
            assert auc is not None
            low, high = auc.interval(0.95)
            covered += low <= truth <= high
        assert 0.93 <= covered / replicates <= 0.97, (truth, covered / replicates)


def test_population_auc_is_the_expected_auc() -> None:
    """The truth the coverage tests use, against brute force on a small pool with ties:
    sum over ordered pairs of distinct customers, weights p_i (1 - p_j)."""
    rng = np.random.default_rng(4)
    p = rng.random(300)
    score = np.round(rng.random(300), 1)
    x, w = score[:, None], score[None, :]
    psi = (x > w) + 0.5 * (x == w)
    weight = p[:, None] * (1 - p[None, :])
    np.fill_diagonal(weight, 0.0)
    assert population_auc(score, p) == pytest.approx(
        float((weight * psi).sum() / weight.sum()), abs=1e-12
    )
