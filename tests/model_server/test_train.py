from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np

from model_server.train import NOISY_VERSION, flip_labels, generate_dataset, train_version
from routing_config import load_config

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_dataset_is_seeded_and_plausible() -> None:
    x1, y1 = generate_dataset(rows=5000)
    x2, y2 = generate_dataset(rows=5000)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert 0.15 < y1.mean() < 0.5
    month_to_month = x1[:, 3] == 0
    # The story the data tells: month-to-month customers churn more.
    assert y1[month_to_month].mean() > y1[~month_to_month].mean()


def test_training_is_deterministic(tmp_path: Path) -> None:
    first = train_version("v2.3.1", tmp_path / "a")
    second = train_version("v2.3.1", tmp_path / "b")
    assert first["training_data"] == second["training_data"]
    assert first["metrics"] == second["metrics"]
    x, _ = generate_dataset(rows=500, seed=1)
    model_a = joblib.load(tmp_path / "a" / "v2.3.1" / "model.joblib")
    model_b = joblib.load(tmp_path / "b" / "v2.3.1" / "model.joblib")
    assert np.array_equal(model_a.predict_proba(x), model_b.predict_proba(x))


def test_the_noisy_label_version_is_deterministic_and_worse(tmp_path: Path) -> None:
    """The quality gate's worse candidate: the same every build, trained on flipped labels,
    measured on true ones, and never one of the shipped routing.yaml's versions."""
    _, labels = generate_dataset()
    flipped = flip_labels(labels, 0.4)
    assert np.array_equal(flipped, flip_labels(labels, 0.4))
    assert 0.37 < float(np.mean(flipped != labels)) < 0.43
    assert np.array_equal(flip_labels(labels, 0.0), labels)
    noisy = train_version(NOISY_VERSION, tmp_path)
    again = train_version(NOISY_VERSION, tmp_path / "again")
    assert noisy["metrics"] == again["metrics"] and noisy["training_data"]["label_noise"] == 0.4
    shipped = train_version("v2.3.1", tmp_path)
    assert noisy["metrics"]["holdout_auc"] < shipped["metrics"]["holdout_auc"] - 0.04
    assert NOISY_VERSION not in load_config(REPO_ROOT / "routing.yaml").config.versions
