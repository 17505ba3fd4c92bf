"""The MLServer side of the bench: its configuration, request and the printed ratios."""

from __future__ import annotations

import json
from pathlib import Path

from bench.versus import MODEL_NAME, mlserver_config, render, v2_body


def test_mlserver_serves_the_artifact_with_predict_proba(tmp_path: Path) -> None:
    config = mlserver_config(tmp_path, Path("/models/model.joblib"), 9000, workers=0)
    settings = json.loads((config / "settings.json").read_text())
    model = json.loads((config / MODEL_NAME / "model-settings.json").read_text())
    assert settings["http_port"] == 9000 and settings["host"] == "127.0.0.1"
    assert settings["parallel_workers"] == 0
    assert model["implementation"] == "mlserver_sklearn.SKLearnModel"
    assert model["parameters"] == {
        "uri": "/models/model.joblib",
        "extra": {"predict_fn": "predict_proba"},
    }


def test_one_encoded_customer_is_one_v2_input() -> None:
    body = json.loads(v2_body([1.0, 2.0, 3.0]))
    assert body["inputs"] == [
        {"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [1.0, 2.0, 3.0]}
    ]


def test_render_prints_the_ratios() -> None:
    def row(target: str, conns: int, rps: float) -> dict:
        return {"target": target, "connections": conns, "rps": rps, "p50_ms": 1.0}

    doc = {
        "http": [row("ours", 1, 3000), row("mlserver", 1, 1000), row("ours", 64, 500)],
        "in_process": {
            "repeats": 100,
            "ours_predict_shap_us": 50.0,
            "ours_probability_and_shap_us": 30.0,
            "sklearn_predict_proba_us": 250.0,
            "onnxruntime_us": 12.5,
            "onnxruntime_gap": 1e-7,
        },
    }
    text = render(doc)
    assert "3.00x" in text  # ours / MLServer at 1 connection
    assert "c64" in text and "500" in text  # ours alone where MLServer has no row
    assert "5.0x ours" in text  # scikit-learn / ours
    assert "4.00x onnxruntime" in text  # ours / onnxruntime
