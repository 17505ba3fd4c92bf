"""Churn probability, risk tier and top-3 SHAP reasons, computed for a whole batch at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from model_server.features import FEATURE_ORDER, encode_rows
from model_server.schemas import ChurnPredictionRequest
from model_server.treeshap import GradientBoostingTreeShap, is_supported

TOP_REASONS = 3
# Risk tiers: low < 0.3 <= medium < 0.6 <= high.
TIER_EDGES = np.array([0.3, 0.6])
RISK_TIERS = ("low", "medium", "high")


class Predictor:
    """Wraps one fitted model and its TreeSHAP explainer; thread-safe for concurrent batches."""

    def __init__(self, model: Any, version: str) -> None:
        self.model = model
        self.version = version
        self.fast_explainer: GradientBoostingTreeShap | None = None
        if is_supported(model):
            # Compiles once per process (seconds); the server warms up before reporting ready.
            self.fast_explainer = GradientBoostingTreeShap(model)
            self.fast_explainer.warm()
        else:
            # Imported only here: shap (with pandas, matplotlib, ...) adds about 0.5 s to every
            # start, and the served models all take the compiled explainer above.
            import shap

            self.explainer = shap.TreeExplainer(model)

    def predict(self, customers: Sequence[ChurnPredictionRequest]) -> list[dict[str, Any]]:
        """One predict_proba and one SHAP call for all rows; row i equals a single call on i."""
        matrix = encode_rows(customers)
        probabilities = self.model.predict_proba(matrix)[:, 1]
        contributions = self._shap_values(matrix)
        # Stable sort so ties resolve in feature order, identically for batch and single calls.
        top = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :TOP_REASONS]
        rows = np.arange(len(matrix))[:, None]
        top_contributions = contributions[rows, top]
        # Everything per row is computed as whole arrays first: a 1,000-row batch then costs
        # one Python loop that only assembles dicts.
        features = np.asarray(FEATURE_ORDER, dtype=object)[top].tolist()
        values = matrix[rows, top].tolist()
        rounded = np.round(top_contributions, 4).tolist()
        rising = (top_contributions > 0).tolist()
        tiers = np.asarray(RISK_TIERS, dtype=object)[
            np.searchsorted(TIER_EDGES, probabilities, side="right")
        ].tolist()
        version = self.version
        return [
            {
                "churn_probability": probability,
                "risk_tier": tier,
                "top_reasons": [
                    {
                        "feature": feature,
                        "value": value,
                        "shap_contribution": contribution,
                        "direction": "increases_risk" if up else "decreases_risk",
                    }
                    for feature, value, contribution, up in zip(
                        row_features, row_values, row_rounded, row_rising, strict=True
                    )
                ],
                "model_version": version,
            }
            for probability, tier, row_features, row_values, row_rounded, row_rising in zip(
                np.round(probabilities, 4).tolist(),
                tiers,
                features,
                values,
                rounded,
                rising,
                strict=True,
            )
        ]

    def _shap_values(self, matrix: np.ndarray) -> np.ndarray:
        if self.fast_explainer is not None:
            return self.fast_explainer.shap_values(matrix)
        values = self.explainer.shap_values(matrix, check_additivity=False)
        # Older shap returns [class_0, class_1] for classifiers; we explain churn (class 1).
        if isinstance(values, list):
            values = values[1]
        if values.ndim == 3:
            values = values[:, :, 1]
        return np.asarray(values)
