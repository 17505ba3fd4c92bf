"""Synthetic customers with their true churn probability, for testing quality against the truth.

The training generator's own draws (``model_server.train.draw_customers``: the features, the
probability each outcome was drawn from, the outcome), and worse models made from the truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from model_server import train

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Customers:
    features: FloatArray  # the model's feature order (model_server.features.FEATURE_ORDER)
    true_probability: FloatArray
    churned: npt.NDArray[np.bool_]


def draw_customers(rows: int, seed: int) -> Customers:
    """The training generator's customers, with the probability each one's outcome came from."""
    features, probability, churned = train.draw_customers(rows, seed)
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
