"""The MLServer side of the bench: its configuration, request and the printed ratios."""

from __future__ import annotations

import json
from pathlib import Path

from bench.versus import mlserver_env, render, v2_body
from model_server.schemas import EXAMPLE_CUSTOMER
from model_server.v2_rows import INPUTS


def test_mlserver_takes_its_ports_and_workers_from_the_environment(tmp_path: Path) -> None:
    env = mlserver_env(9000, 0, tmp_path / "metrics")
    assert env["MLSERVER_HTTP_PORT"] == "9000" and env["MLSERVER_HOST"] == "127.0.0.1"
    assert env["MLSERVER_PARALLEL_WORKERS"] == "0"
    assert len({env["MLSERVER_GRPC_PORT"], env["MLSERVER_METRICS_PORT"], "9000"}) == 3
    assert (tmp_path / "metrics").is_dir()


def test_the_v2_request_is_one_named_tensor_per_field() -> None:
    other = {**EXAMPLE_CUSTOMER, "tenure": 3, "contract_type": "two-year"}
    body = json.loads(v2_body([dict(EXAMPLE_CUSTOMER), other]))
    assert [(t["name"], t["datatype"]) for t in body["inputs"]] == list(INPUTS.items())
    by_name = {t["name"]: t for t in body["inputs"]}
    assert by_name["tenure"] == {
        "name": "tenure",
        "datatype": "INT64",
        "shape": [2],
        "data": [14, 3],
    }
    assert by_name["contract_type"]["data"] == ["month-to-month", "two-year"]
    assert "outputs" not in body  # all of each server's outputs: the same request to both


def test_render_prints_the_ratios() -> None:
    def row(target: str, conns: int, rps: float) -> dict:
        return {"target": target, "connections": conns, "rps": rps, "p50_ms": 1.0}

    doc = {
        "http": [
            row("ours", 1, 3000),
            row("mlserver", 1, 1000),
            row("ours /predict", 1, 3500),
            row("ours", 64, 500),
        ],
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
    assert "3.50x mlserver" in text  # ours /predict / MLServer
    assert "c64" in text and "500" in text  # ours alone where MLServer has no row
    assert "5.0x ours" in text  # scikit-learn / ours
    assert "4.00x onnxruntime" in text  # ours / onnxruntime
