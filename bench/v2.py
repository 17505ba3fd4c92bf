"""The Open Inference Protocol through the gateway, beside /predict on the same replicas.

Two parts, both on the real-replica gateway of the main table:

- *One customer*: the same customer as a V2 JSON request (one named tensor per field, no
  ``outputs``: the probability, the tier and the top-3 SHAP reasons, as /predict answers) to
  ``/v2/models/churn/infer``, a new sticky key on every request, in the same interleaved rounds
  as /predict (``report.V2_TARGET``).
- *1,000 rows*: the same customers as one ``/predict/batch`` request, one V2 request in Triton's
  binary tensor form (every output binary, as ``tritonclient.http`` asks by default) and one V2
  JSON request, all pinned to the stable version, timed end to end (the request's bytes sent to
  the answer's last byte; the client's decoding is not timed) in interleaved rounds. The run
  checks the three give the same probabilities.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.versus import INFER_PATH, MODEL_NAME, v2_body
from bench.wrk import write_script

JSON = {"content-type": "application/json"}


def v2_script(tmp: Path, example: Path, sticky_header: str) -> Path:
    """wrk's script for the example customer as a V2 JSON request, a new sticky key each."""
    body = v2_body([json.loads(example.read_text())])
    return write_script(tmp / "v2.lua", body, INFER_PATH, sticky_header)


def binary_request(customers: list[dict[str, Any]]) -> tuple[bytes, int]:
    """The customers as one V2 request with every input binary, and every output asked binary."""
    from model_server.v2_rows import INPUTS
    from protocols.v2.codec import InferRequest, Tensor, encode_request

    dtypes = {"INT64": np.int64, "FP64": np.float64, "BOOL": np.bool_}
    tensors = []
    for name, datatype in INPUTS.items():
        values = [customer[name] for customer in customers]
        data: np.ndarray | list[bytes] = (
            [str(v).encode() for v in values]
            if datatype == "BYTES"
            else np.asarray(values, dtype=dtypes[datatype])
        )
        tensors.append(Tensor(name, datatype, (len(customers),), data))
    request = InferRequest(None, tensors, None, {"binary_data_output": True})
    body, header_length = encode_request(request, binary=True)
    assert header_length is not None
    return body, header_length


def probabilities_v2(body: bytes, header_length: int | None) -> list[float]:
    from protocols.v2.codec import decode_response

    answer = decode_response(body, header_length)
    data = answer.outputs["churn_probability"].data
    assert isinstance(data, np.ndarray)
    return [float(p) for p in data]


def batch_v2(
    gateway: str,
    version: str,
    pin_header: str,
    rows: int,
    repeats: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Median end-to-end ms of /predict/batch, V2 binary and V2 JSON for the same ``rows``."""
    from bench.batch import make_customers

    customers = make_customers(rows)
    versioned = f"/v2/models/{MODEL_NAME}/versions/{version}/infer"
    binary, header_length = binary_request(customers)
    octets = {"content-type": "application/octet-stream"}
    calls: dict[str, tuple[str, bytes, dict[str, str]]] = {
        "predict_batch": (
            f"{gateway}/predict/batch",
            json.dumps({"customers": customers}).encode(),
            {**JSON, pin_header: version},
        ),
        "v2_binary": (
            f"{gateway}{versioned}",
            binary,
            {**octets, "inference-header-content-length": str(header_length)},
        ),
        "v2_json": (f"{gateway}{versioned}", v2_body(customers).encode(), JSON),
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    answers: dict[str, httpx.Response] = {}
    with httpx.Client(timeout=120) as client:
        for name, (url, body, headers) in calls.items():  # warm-up, and the answers compared
            answers[name] = client.post(url, content=body, headers=headers)
            answers[name].raise_for_status()
        for _ in range(repeats):
            for name, (url, body, headers) in calls.items():
                start = time.perf_counter()
                response = client.post(url, content=body, headers=headers)
                elapsed = (time.perf_counter() - start) * 1000
                response.raise_for_status()
                times[name].append(elapsed)
    batch = [p["churn_probability"] for p in answers["predict_batch"].json()["predictions"]]
    length = answers["v2_binary"].headers.get("inference-header-content-length")
    if length is None:
        raise ValueError("the V2 binary answer carries no Inference-Header-Content-Length")
    binary_p = probabilities_v2(answers["v2_binary"].content, int(length))
    json_p = probabilities_v2(answers["v2_json"].content, None)
    same = batch == binary_p == json_p
    medians = {name: round(statistics.median(values), 2) for name, values in times.items()}
    say(
        f"v2 batch of {rows}: /predict/batch {medians['predict_batch']} ms, V2 binary "
        f"{medians['v2_binary']} ms, V2 JSON {medians['v2_json']} ms"
        + ("" if same else "  PROBABILITIES DIFFER")
    )
    return {
        "rows": rows,
        "repeats": repeats,
        "version": version,
        "median_ms": medians,
        "bytes": {
            name: {"request": len(body), "answer": len(answers[name].content)}
            for name, (_, body, _) in calls.items()
        },
        "binary_speedup": round(medians["predict_batch"] / medians["v2_binary"], 3),
        "json_speedup": round(medians["predict_batch"] / medians["v2_json"], 3),
        "probabilities_equal": same,
    }


def render(doc: dict[str, Any] | None) -> str:
    if not doc:
        return ""
    ms, size = doc["median_ms"], doc["bytes"]

    def line(label: str, name: str, speedup: str) -> str:
        kib = (size[name]["request"] / 1024, size[name]["answer"] / 1024)
        return (
            f"  {label:<34} {ms[name]:8.2f} ms  {speedup:<26} "
            f"(request {kib[0]:,.0f} KiB, answer {kib[1]:,.0f} KiB)"
        )

    return "\n".join(
        [
            "",
            f"A {doc['rows']:,}-row request through the gateway, end to end (median of "
            f"{doc['repeats']}, pinned to {doc['version']}, probabilities "
            f"{'equal' if doc['probabilities_equal'] else 'DIFFER'}):",
            line("POST /predict/batch (JSON)", "predict_batch", ""),
            line(
                "V2 infer, binary tensors",
                "v2_binary",
                f"{doc['binary_speedup']:.2f}x /predict/batch",
            ),
            line("V2 infer, JSON", "v2_json", f"{doc['json_speedup']:.2f}x /predict/batch"),
        ]
    )
