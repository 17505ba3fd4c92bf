from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np

from model_server.train import generate_dataset, train_version


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
