"""Churn probability, risk tier and top-3 SHAP reasons, computed for a whole batch at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import shap

from model_server.features import FEATURE_ORDER, encode_rows
from model_server.schemas import ChurnPredictionRequest

TOP_REASONS = 3


def risk_tier(probability: float) -> str:
    if probability < 0.3:
        return "low"
    if probability < 0.6:
        return "medium"
    return "high"


class Predictor:
    """Wraps one fitted model and its TreeSHAP explainer; thread-safe for concurrent batches."""

    def __init__(self, model: Any, version: str) -> None:
        self.model = model
        self.version = version
        self.explainer = shap.TreeExplainer(model)

    def predict(self, customers: Sequence[ChurnPredictionRequest]) -> list[dict[str, Any]]:
        """One predict_proba and one SHAP call for all rows; row i equals a single call on i."""
        matrix = encode_rows(customers)
        probabilities = self.model.predict_proba(matrix)[:, 1]
        contributions = self._shap_values(matrix)
        # Stable sort so ties resolve in feature order, identically for batch and single calls.
        order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :TOP_REASONS]
        results = []
        for i, probability in enumerate(probabilities.tolist()):
            reasons = []
            for j in order[i].tolist():
                contribution = float(contributions[i, j])
                reasons.append(
                    {
                        "feature": FEATURE_ORDER[j],
                        "value": float(matrix[i, j]),
                        "shap_contribution": round(contribution, 4),
                        "direction": "increases_risk" if contribution > 0 else "decreases_risk",
                    }
                )
            results.append(
                {
                    "churn_probability": round(probability, 4),
                    "risk_tier": risk_tier(probability),
                    "top_reasons": reasons,
                    "model_version": self.version,
                }
            )
        return results

    def _shap_values(self, matrix: np.ndarray) -> np.ndarray:
        values = self.explainer.shap_values(matrix, check_additivity=False)
        # Older shap returns [class_0, class_1] for classifiers; we explain churn (class 1).
        if isinstance(values, list):
            values = values[1]
        if values.ndim == 3:
            values = values[:, :, 1]
        return np.asarray(values)
