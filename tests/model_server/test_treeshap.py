"""The compiled TreeSHAP gives shap.TreeExplainer's path-dependent values, batch and one row."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pytest
import shap
from sklearn.ensemble import GradientBoostingClassifier

from model_server import treeshap
from model_server.predictor import Predictor
from model_server.train import generate_dataset
from model_server.treeshap import GradientBoostingTreeShap, is_supported

VERSIONS = ["v2.3.1", "v2.4.0"]
ROWS = 2_000


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    X, _ = generate_dataset(rows=ROWS, seed=4242)
    return X


@pytest.fixture(scope="module", params=VERSIONS)
def model(request: pytest.FixtureRequest, artifacts_dir: Path) -> GradientBoostingClassifier:
    return joblib.load(artifacts_dir / request.param / "model.joblib")


def reference(model: GradientBoostingClassifier, X: np.ndarray) -> np.ndarray:
    values = shap.TreeExplainer(model).shap_values(X, check_additivity=False)
    assert values.shape == X.shape
    return values


def test_matches_shap_on_a_batch(model: GradientBoostingClassifier, rows: np.ndarray) -> None:
    explainer = GradientBoostingTreeShap(model)
    ours = explainer.shap_values(rows)
    assert ours.shape == rows.shape
    assert np.allclose(ours, reference(model, rows), atol=1e-9, rtol=1e-7)


def test_matches_shap_on_a_single_row(model: GradientBoostingClassifier, rows: np.ndarray) -> None:
    explainer = GradientBoostingTreeShap(model)
    row = rows[:1]
    ours = explainer.shap_values(row)
    assert ours.shape == (1, rows.shape[1])
    assert np.allclose(ours, reference(model, row), atol=1e-9, rtol=1e-7)
    # A 1-D row is one row, and the serial (few rows) and column-wise (batch) kernels agree.
    assert np.array_equal(explainer.shap_values(rows[0]), ours)
    assert np.allclose(explainer.shap_values(rows)[:1], ours, atol=1e-12, rtol=0)


def test_values_sum_to_the_log_odds(model: GradientBoostingClassifier, rows: np.ndarray) -> None:
    explainer = GradientBoostingTreeShap(model)
    X = rows[:200]
    expected = shap.TreeExplainer(model).expected_value
    total = explainer.shap_values(X).sum(axis=1) + expected
    assert np.allclose(total, model.decision_function(X), atol=1e-9)


def test_missing_values_follow_shap(model: GradientBoostingClassifier, rows: np.ndarray) -> None:
    X = rows[:50].copy()
    X[::3, 1] = np.nan
    X[1::4, 5] = np.nan
    ours = GradientBoostingTreeShap(model).shap_values(X)
    assert np.allclose(ours, reference(model, X), atol=1e-9, rtol=1e-7)


def test_empty_batch(model: GradientBoostingClassifier) -> None:
    explainer = GradientBoostingTreeShap(model)
    assert explainer.shap_values(np.zeros((0, model.n_features_in_))).shape == (
        0,
        model.n_features_in_,
    )


def test_predictor_uses_it(model: GradientBoostingClassifier) -> None:
    assert is_supported(model)
    assert Predictor(model, "test").fast_explainer is not None


def test_multiclass_is_not_supported() -> None:
    X, y = generate_dataset(rows=300, seed=1)
    labels = (X[:, 0] > np.median(X[:, 0])).astype(int) + y
    multiclass = GradientBoostingClassifier(n_estimators=3, max_depth=2).fit(X, labels)
    assert not is_supported(multiclass)
    with pytest.raises(ValueError):
        GradientBoostingTreeShap(multiclass)


def test_row_and_column_kernels_give_the_same_floats(
    model: GradientBoostingClassifier, rows: np.ndarray
) -> None:
    # More rows than one column block, the last block partial, and missing values.
    X = np.ascontiguousarray(rows[: treeshap.COLUMN_BLOCK * 2 + 37].astype(np.float32), np.float64)
    X[::11, 2] = np.nan
    explainer = GradientBoostingTreeShap(model)
    by_row = treeshap._shap_serial(X, explainer._model, explainer.init_raw)
    by_column = treeshap._shap_columns(X, explainer._model, explainer.init_raw)
    assert np.array_equal(by_row[0], by_column[0])
    assert np.array_equal(by_row[1], by_column[1])
    assert np.allclose(by_column[1], reference(model, X), atol=1e-9, rtol=1e-7)


def test_the_log_odds_alone_are_the_explained_ones_bit_for_bit(
    model: GradientBoostingClassifier, rows: np.ndarray
) -> None:
    # What a V2 request that asks for no reasons is scored with: the same additions as the
    # SHAP pass makes, without its tables, row-wise and column-wise alike.
    X = np.array(rows[: treeshap.COLUMN_BLOCK + 41])
    X[::13, 1] = np.nan
    explainer = GradientBoostingTreeShap(model)
    for n in (1, treeshap.COLUMNS_MIN_ROWS - 1, len(X)):
        assert np.array_equal(explainer.log_odds(X[:n]), explainer.explain(X[:n])[0])
    finite = rows[:100]
    assert np.allclose(explainer.log_odds(finite), model.decision_function(finite), atol=1e-12)
