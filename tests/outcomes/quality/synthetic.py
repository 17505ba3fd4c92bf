"""Synthetic customers with their true churn probability, for testing quality against the truth.

``model_server.train.generate_dataset`` draws each customer's features, a log-odds of churn with
a per-customer noise term, and the outcome, but returns only the features and the outcome. This
repeats its draws in the same order from the same seed, and also returns the probability the
outcome was drawn from. ``test_synthetic_matches_the_training_generator`` holds it to the
generator byte for byte: if train.py changes its draws, that test fails here first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Customers:
    features: FloatArray  # the model's feature order (model_server.features.FEATURE_ORDER)
    true_probability: FloatArray
    churned: npt.NDArray[np.bool_]


def draw_customers(rows: int, seed: int) -> Customers:
    """The training generator's customers, with the probability each one's outcome came from."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(3, size=rows, p=[0.55, 0.25, 0.20])
    tenure = np.clip(rng.gamma(2.0, 12.0 + 10.0 * contract, size=rows), 0, 120).round()
    internet = rng.choice(3, size=rows, p=[0.15, 0.40, 0.45])
    streaming = rng.integers(0, 5, size=rows)
    monthly = np.clip(20 + 25 * internet + 7 * streaming + rng.normal(0, 8, rows), 18, 150)
    total = np.clip(monthly * tenure * rng.normal(1.0, 0.05, rows), 0, None).round(2)
    payment = rng.choice(4, size=rows, p=[0.35, 0.20, 0.22, 0.23])
    tickets = rng.poisson(1.0 + 1.2 * (internet == 2), size=rows)
    paperless = rng.random(rows) < 0.6
    senior = rng.random(rows) < 0.16
    logit = (
        -1.2
        - 0.045 * tenure
        + 1.3 * (contract == 0)
        - 0.8 * (contract == 2)
        + 0.7 * (payment == 0)
        + 0.32 * tickets
        + 0.6 * (internet == 2)
        + 0.012 * (monthly - 70)
        + 0.25 * paperless
        + 0.35 * senior
        - 0.08 * streaming
        + rng.normal(0, 0.6, rows)
    )
    probability = 1 / (1 + np.exp(-logit))
    churned = rng.random(rows) < probability
    features = np.column_stack(
        [
            tenure,
            monthly.round(2),
            total,
            contract,
            payment,
            tickets,
            internet,
            streaming,
            paperless,
            senior,
        ]
    ).astype(np.float64)
    return Customers(features, probability, churned)


def noisy(probability: FloatArray, sd: float, rng: np.random.Generator) -> FloatArray:
    """A worse model: the true log-odds plus independent normal noise of ``sd`` per customer."""
    logit = np.log(probability) - np.log1p(-probability) + rng.normal(0.0, sd, probability.size)
    return 1 / (1 + np.exp(-logit))


def population_auc(score: FloatArray, probability: FloatArray) -> float:
    """The AUC ``score`` has on this pool of customers when each churns with ``probability``:
    P(score of a churner > score of a stayer, ties a half) over pairs of distinct customers,
    sum_{i != j} p_i (1 - p_j) ([s_i > s_j] + [s_i = s_j] / 2) / sum_{i != j} p_i (1 - p_j).
    Exact, O(n log n); the expectation of AUC estimates on samples drawn from the pool."""
    order = np.argsort(score, kind="stable")
    s, p = score[order], probability[order]
    stay = 1 - p
    new = np.r_[True, s[1:] != s[:-1]]
    group = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    before = np.r_[0.0, np.cumsum(stay)][starts]  # stayers' weight below each tie group
    within = np.add.reduceat(stay, starts)  # and inside it
    below = before[group] + 0.5 * (within[group] - stay)  # others tied count a half
    numerator = float(np.sum(p * below))
    denominator = float(p.sum() * stay.sum() - np.sum(p * stay))
    return numerator / denominator
