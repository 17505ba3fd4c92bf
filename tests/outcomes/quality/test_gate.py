"""The quality gate: its bound by hand, its decisions on constructed comparisons, a worse model
caught and an equal one passed on simulated rollouts that look again and again, the shipped
candidate judged on its merits, and the bound's validity over repeated looks measured."""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist

import joblib
import numpy as np
import pytest

from outcomes.quality.compare import Comparison, Difference, compare_paired, compare_unpaired
from outcomes.quality.gate import Decision, confidence_sequence_radius, decide, tuned_rho
from tests.outcomes.quality.synthetic import draw_customers, noisy, population_auc

MARGIN = 0.01
MIN_OUTCOMES = 500


def comparison(estimate: float, variance: float, n: int = 10_000) -> Comparison:
    return Comparison(
        "unpaired", "v2.4.0", "v2.3.1", n, n, n // 4, n // 4, Difference(estimate, variance), None
    )


def test_radius_is_the_normal_mixture_boundary() -> None:
    variance, alpha, rho = 1e-4, 0.05, 500.0
    info = 1 / variance
    by_hand = math.sqrt((info + rho) * (math.log(1 + info / rho) + 2 * math.log(20))) / info
    assert confidence_sequence_radius(variance, alpha, rho) == pytest.approx(by_hand, rel=1e-12)
    # Wider than the fixed-sample interval at every sample size: the price of looking often.
    z = NormalDist().inv_cdf(0.975)
    for v in (1e-2, 1e-3, 1e-4, 1e-5, 1e-6):
        assert confidence_sequence_radius(v, alpha, rho) > z * math.sqrt(v)


def test_rho_is_tuned_to_reach_the_margin_first() -> None:
    rho = tuned_rho(MARGIN, 0.05)

    def information_at_margin(r: float) -> float:
        low, high = 1.0, 1e12
        for _ in range(200):
            mid = math.sqrt(low * high)
            low, high = (
                (mid, high) if confidence_sequence_radius(1 / mid, 0.05, r) > MARGIN else (low, mid)
            )
        return high

    best = information_at_margin(rho)
    assert best < information_at_margin(rho / 2) and best < information_at_margin(rho * 2)
    # 2.4 times the outcomes a fixed 95% interval needs to be +-MARGIN wide.
    fixed = (NormalDist().inv_cdf(0.975) / MARGIN) ** 2
    assert best / fixed == pytest.approx(2.4, abs=0.05)


def test_waits_for_outcomes_on_both_sides() -> None:
    assert decide(None, MIN_OUTCOMES, MARGIN).decision is Decision.WAIT
    few = Comparison(
        "unpaired", "v2.4.0", "v2.3.1", 120, 4000, 30, 1000, Difference(0.0, 1e-4), None
    )
    result = decide(few, MIN_OUTCOMES, MARGIN)
    assert result.decision is Decision.WAIT
    assert "v2.4.0 has 120 labelled outcomes, v2.3.1 4000" in result.reason
    assert "needs 500 on both sides" in result.reason
    no_auc = Comparison("paired", "v2.4.0", "v2.3.1", 600, 600, 1, 1, None, None)
    result = decide(no_auc, MIN_OUTCOMES, MARGIN)
    assert result.decision is Decision.WAIT
    assert "two churners" in result.reason


def test_pass_fail_and_inconclusive_on_the_bounds() -> None:
    rho = tuned_rho(MARGIN, 0.05)
    variance = 1e-5
    radius = confidence_sequence_radius(variance, 0.05, rho)
    passed = decide(comparison(-MARGIN + radius + 1e-4, variance), MIN_OUTCOMES, MARGIN)
    assert passed.decision is Decision.PASS
    assert passed.lower == pytest.approx(-MARGIN + 1e-4)
    assert "lower bound is above -0.01" in passed.reason
    failed = decide(comparison(-MARGIN - radius - 1e-4, variance), MIN_OUTCOMES, MARGIN)
    assert failed.decision is Decision.FAIL
    assert failed.upper == pytest.approx(-MARGIN - 1e-4)
    assert "upper bound is below -0.01" in failed.reason
    unsure = decide(comparison(-MARGIN + radius / 2, variance), MIN_OUTCOMES, MARGIN)
    assert unsure.decision is Decision.INCONCLUSIVE
    assert unsure.outcomes_needed is not None and unsure.outcomes_needed > 20_000
    assert f"about {unsure.outcomes_needed} outcomes in all would decide" in unsure.reason
    # The projection is right: at that many outcomes (same variance per outcome) it decides.
    later = comparison(
        unsure.auc_difference or 0.0,
        variance * 20_000 / unsure.outcomes_needed,
        unsure.outcomes_needed // 2,
    )
    assert decide(later, MIN_OUTCOMES, MARGIN).decision is Decision.PASS
    assert passed.to_json()["decision"] == "PASS"


def watch(
    design: str,
    candidate: np.ndarray,
    stable: np.ndarray,
    truth: np.ndarray,
    seed: int,
    largest: int,
) -> tuple[Decision, int, float, float, float]:
    """A rollout's gate asked as outcomes arrive (every 10% more), until PASS or FAIL."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, truth.size, largest)
    churned = rng.random(largest) < truth[pick]
    # Unpaired: a 50/50 split, each customer scored by one version only.
    to_candidate = rng.random(largest) < 0.5
    n = 200
    while n <= largest:
        y, p = churned[:n], pick[:n]
        if design == "paired":
            c = compare_paired(candidate[p], stable[p], y)
        else:
            side = to_candidate[:n]
            c = compare_unpaired(candidate[p[side]], y[side], stable[p[~side]], y[~side])
        result = decide(c, MIN_OUTCOMES, MARGIN)
        if result.decision in (Decision.PASS, Decision.FAIL):
            assert result.lower is not None and result.upper is not None
            return result.decision, n, result.auc_difference or 0.0, result.lower, result.upper
        n = math.ceil(n * 1.1)
    return Decision.INCONCLUSIVE, largest, math.nan, math.nan, math.nan


@pytest.fixture(scope="module")
def models():  # type: ignore[no-untyped-def]
    """Stable (the true log-odds plus noise 0.5, AUC about 0.846 on this pool), a candidate as
    good (another draw of the same noise) and a worse one (noise 1.0, AUC about 0.816)."""
    pool = draw_customers(200_000, seed=41)
    rng = np.random.default_rng(42)
    truth = pool.true_probability
    return truth, noisy(truth, 0.5, rng), noisy(truth, 0.5, rng), noisy(truth, 1.0, rng)


@pytest.mark.parametrize("design", ["paired", "unpaired"])
def test_a_worse_model_is_caught_and_an_equal_one_passes(models, design) -> None:  # type: ignore[no-untyped-def]
    truth, stable, equal, worse = models
    drop = population_auc(worse, truth) - population_auc(stable, truth)
    same = population_auc(equal, truth) - population_auc(stable, truth)
    assert drop < -2 * MARGIN and abs(same) < MARGIN / 10
    largest = 30_000 if design == "paired" else 300_000
    for seed in range(3):
        decision, n, d, low, high = watch(design, worse, stable, truth, seed, largest)
        assert decision is Decision.FAIL, (design, seed, n, d, low, high)
        decision, n, d, low, high = watch(design, equal, stable, truth, seed, largest)
        assert decision is Decision.PASS, (design, seed, n, d, low, high)


def test_the_shipped_candidate_is_judged_on_its_merits(artifacts_dir: Path) -> None:
    """v2.4.0 against v2.3.1, paired, on fresh customers of the generator with outcomes drawn
    from their true probability: the truth (the pool's exact AUCs) says v2.4.0 is as good as
    v2.3.1 within a small fraction of the margin, and the gate passes it."""
    pool = draw_customers(100_000, seed=43)
    scores = {
        version: joblib.load(artifacts_dir / version / "model.joblib").predict_proba(pool.features)[
            :, 1
        ]
        for version in ("v2.3.1", "v2.4.0")
    }
    truth = pool.true_probability
    true_difference = population_auc(scores["v2.4.0"], truth) - population_auc(
        scores["v2.3.1"], truth
    )
    assert abs(true_difference) < MARGIN / 4
    decision, n, d, low, high = watch(
        "paired", scores["v2.4.0"], scores["v2.3.1"], truth, 0, 20_000
    )
    assert decision is Decision.PASS, (n, d, low, high)
    assert n < 2000


def test_the_bounds_hold_however_often_they_are_read(models) -> None:  # type: ignore[no-untyped-def]
    """200 simulated rollouts, each read 30 times (from 500 to 10,000 paired outcomes): the
    always-valid bounds ever miss the true AUC difference in at most 5% of the rollouts; the
    fixed-sample 95% interval, read as often, misses in far more."""
    truth, stable, equal, _ = models
    true_difference = population_auc(equal, truth) - population_auc(stable, truth)
    rho = tuned_rho(MARGIN, 0.05)
    z = NormalDist().inv_cdf(0.975)
    looks = np.unique(np.geomspace(500, 10_000, 30).astype(int))
    rng = np.random.default_rng(7)
    rollouts = 200
    missed = {"always valid": 0, "fixed": 0}
    for _ in range(rollouts):
        pick = rng.integers(0, truth.size, looks[-1])
        churned = rng.random(looks[-1]) < truth[pick]
        ever = {"always valid": False, "fixed": False}
        for n in looks:
            c = compare_paired(equal[pick[:n]], stable[pick[:n]], churned[:n])
            assert c.auc is not None
            error = abs(c.auc.estimate - true_difference)
            ever["always valid"] |= error > confidence_sequence_radius(c.auc.variance, 0.05, rho)
            ever["fixed"] |= error > z * c.auc.standard_error
        for name, flag in ever.items():
            missed[name] += flag
    rates = {name: count / rollouts for name, count in missed.items()}
    assert rates["always valid"] <= 0.05, rates
    assert rates["fixed"] > 2 * max(rates["always valid"], 0.05), rates
