"""The V2 rows of the bench: the binary request, the bars against /predict and the printout."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench import report
from bench.batch import make_customers
from bench.v2 import binary_request, render
from model_server.features import encode_rows
from model_server.schemas import ChurnPredictionRequest
from model_server.v2_rows import INPUTS, encode_tensors
from protocols.v2.codec import decode_request


def test_the_binary_request_holds_the_customers_and_asks_binary_outputs() -> None:
    customers = make_customers(7)
    body, header_length = binary_request(customers)
    request = decode_request(body, header_length, max_elements=1000)
    assert [t.name for t in request.inputs] == list(INPUTS)
    assert request.outputs is None and request.parameters == {"binary_data_output": True}
    expected = encode_rows([ChurnPredictionRequest(**c) for c in customers])
    assert np.array_equal(encode_tensors(request.inputs), expected)


def measured(target: str, conns: int, rps: float, p50: float) -> dict[str, Any]:
    return {
        "backend": "real",
        "target": target,
        "workers": 2,
        "connections": conns,
        "rps": rps,
        "p50_ms": p50,
        "x_nginx": None,
        "p50_over_direct_ms": None,
        "cpu_x_nginx": None,
    }


def bars(rows: list[dict[str, Any]], v2_batch: dict[str, Any] | None) -> dict[str, report.Bar]:
    doc = {
        "measurements": rows,
        "config": {"gateway_workers_held_to_bars": 2, "connections": [1, 64]},
        "v2_batch": v2_batch,
    }
    return {bar.name: bar for bar in report.evaluate(doc)}


def batch_doc(predict_batch: float, binary: float, json: float) -> dict[str, Any]:
    size = {"request": 2048, "answer": 4096}
    return {
        "rows": 1000,
        "repeats": 5,
        "version": "v2.3.1",
        "median_ms": {"predict_batch": predict_batch, "v2_binary": binary, "v2_json": json},
        "bytes": {"predict_batch": size, "v2_binary": size, "v2_json": size},
        "binary_speedup": round(predict_batch / binary, 3),
        "json_speedup": round(predict_batch / json, 3),
        "probabilities_equal": True,
    }


def test_the_v2_bars_compare_with_predict_in_the_same_run() -> None:
    rows = [
        measured("gateway", 64, 2000, 30.0),
        measured(report.V2_TARGET, 64, 1700, 35.0),
        measured("gateway", 1, 1500, 0.600),
        measured(report.V2_TARGET, 1, 1450, 0.640),
    ]
    found = bars(rows, batch_doc(20.0, 16.0, 25.0))
    ratio = found[f"real replicas, 64 conns: {report.V2_TARGET} >= 0.9x gateway /predict req/s"]
    assert ratio.measured == 0.85 and ratio.passed is False
    p50 = found[f"real replicas, 1 conn: {report.V2_TARGET} p50 <= gateway /predict + 0.05 ms"]
    assert p50.measured == 0.04 and p50.passed is True
    batch = found["1,000 rows: V2 binary >= 1x /predict/batch, end to end"]
    assert batch.measured == 1.25 and batch.passed is True
    assert not any("V2" in name for name in bars(rows[:1], None))


def test_render_prints_the_three_requests() -> None:
    text = render(batch_doc(20.0, 16.0, 25.0))
    assert "POST /predict/batch (JSON)" in text and "20.00 ms" in text
    assert "1.25x /predict/batch" in text and "0.80x /predict/batch" in text
    assert "probabilities equal" in text
    assert render(None) == ""


def test_v2_only_runs_the_v2_rows_at_the_last_worker_count() -> None:
    from bench.cli import parse_args

    args = parse_args(["--v2-only", "--gateway-workers", "1,2"])
    assert args.v2_only and args.gateway_workers == [2]
    assert args.no_versus and args.no_overload and not args.no_real
    assert not parse_args([]).v2_only
