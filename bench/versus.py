"""Side by side: our replica against MLServer on the same artifact, and per-row costs in process.

MLServer (pinned, with its scikit-learn runtime), onnxruntime and skl2onnx live in a virtualenv of
the bench's own (``bench/.cache/mlserver-venv``, made on first use): they are never dependencies
of the project. MLServer serves the artifact with ``predict_fn: predict_proba`` and answers with
the probabilities only; our replica also explains each prediction (top 3 SHAP reasons).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.procs import REPO_ROOT, Procs, free_port
from bench.wrk import WrkResult, combine, run_wrk, write_script

VENV = REPO_ROOT / "bench" / ".cache" / "mlserver-venv"
MODEL_NAME = "churn"


def pins() -> list[str]:
    import sklearn

    # The artifact is a pickle: MLServer's side must unpickle it with the same scikit-learn.
    return [
        "mlserver==1.7.1",
        "mlserver-sklearn==1.7.1",
        "uvloop==0.21.0",  # MLServer's worker does not start with later uvloop releases
        f"scikit-learn=={sklearn.__version__}",
        f"numpy=={np.__version__}",
        "onnxruntime==1.32.0",
        "skl2onnx==1.20.0",
    ]


def ensure_venv(say: Callable[[str], None]) -> Path:
    """The bench's own virtualenv with the pinned packages; made or updated when they differ."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".pins"
    wanted = "\n".join(pins()) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    say(f"installing MLServer and onnxruntime into {VENV} (first run only)")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *pins()], check=True)
    stamp.write_text(wanted)
    return python


def mlserver_config(directory: Path, model_path: Path, http_port: int, workers: int) -> Path:
    (directory / MODEL_NAME).mkdir(parents=True, exist_ok=True)
    settings = {
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "parallel_workers": workers,
        "debug": False,
    }
    model = {
        "name": MODEL_NAME,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(model_path), "extra": {"predict_fn": "predict_proba"}},
    }
    (directory / "settings.json").write_text(json.dumps(settings))
    (directory / MODEL_NAME / "model-settings.json").write_text(json.dumps(model))
    return directory


def v2_body(encoded: list[float]) -> str:
    """The Open Inference Protocol request for one encoded customer."""
    inputs = [{"name": "input-0", "shape": [1, len(encoded)], "datatype": "FP64", "data": encoded}]
    return json.dumps({"inputs": inputs})


def encoded_example(example: Path) -> list[float]:
    from model_server.features import encode_rows
    from model_server.schemas import ChurnPredictionRequest

    customer = ChurnPredictionRequest(**json.loads(example.read_text()))
    encoded: list[float] = encode_rows([customer])[0].tolist()
    return encoded


def median_us(call: Callable[[], object], repeats: int) -> float:
    for _ in range(min(200, repeats)):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1000


ONNX_SCRIPT = """
import json, statistics, sys, time
import joblib, numpy as np, onnxruntime as ort
from skl2onnx import to_onnx
model = joblib.load(sys.argv[1]); row = np.asarray([json.loads(sys.argv[2])], dtype=np.float32)
onx = to_onnx(model, row, options={id(model): {"zipmap": False}}, target_opset=17)
options = ort.SessionOptions(); options.intra_op_num_threads = 1
session = ort.InferenceSession(onx.SerializeToString(), options, providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
feed = {name: row}
for _ in range(200): session.run(None, feed)
times = []
for _ in range(int(sys.argv[3])):
    start = time.perf_counter_ns()
    session.run(None, feed)
    times.append(time.perf_counter_ns() - start)
proba = float(session.run(None, feed)[1][0, 1])
print(json.dumps({"us": statistics.median(times) / 1000, "probability": proba}))
"""


def in_process(
    model_path: Path, version: str, example: Path, venv_python: Path | None, repeats: int
) -> dict[str, Any]:
    """Median per-row cost of our predict + top-3 SHAP, sklearn's predict_proba, onnxruntime."""
    import joblib

    from model_server.predictor import Predictor
    from model_server.schemas import ChurnPredictionRequest

    model = joblib.load(model_path)
    predictor = Predictor(model, version)
    customer = [ChurnPredictionRequest(**json.loads(example.read_text()))]
    encoded = encoded_example(example)
    row = np.asarray([encoded])
    costs: dict[str, Any] = {
        "serving_path": predictor.serving_path.name,
        "ours_predict_shap_us": median_us(lambda: predictor.predict(customer), repeats),
        "ours_probability_and_shap_us": median_us(lambda: predictor.score(row), repeats),
        "sklearn_predict_proba_us": median_us(lambda: model.predict_proba(row), repeats // 4),
        "repeats": repeats,
    }
    if venv_python is not None:
        argv = [str(venv_python), "-c", ONNX_SCRIPT, str(model_path), json.dumps(encoded)]
        done = subprocess.run([*argv, str(repeats)], capture_output=True, text=True, check=True)
        onnx = json.loads(done.stdout.strip().splitlines()[-1])
        costs["onnxruntime_us"] = onnx["us"]
        costs["onnxruntime_gap"] = abs(onnx["probability"] - model.predict_proba(row)[0, 1])
    return costs


def versus_http(
    *,
    procs: Procs,
    tmp: Path,
    wrk: str,
    venv_python: Path,
    model_path: Path,
    ours_url: str,
    example: Path,
    ours_session: int | None = None,
    connections: list[int],
    rounds: int,
    seconds: float,
    wrk_threads: int,
    mlserver_workers: int,
    say: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Our /predict and MLServer's infer endpoint, same customer, interleaved rounds."""
    port = free_port()
    config = mlserver_config(tmp / "mlserver", model_path, port, mlserver_workers)
    mlserver_bin = venv_python.parent / "mlserver"
    proc = procs.start("mlserver", [str(mlserver_bin), "start", str(config)])
    infer = f"http://127.0.0.1:{port}/v2/models/{MODEL_NAME}/infer"
    proc.wait_http(f"http://127.0.0.1:{port}/v2/models/{MODEL_NAME}/ready", timeout=180)
    body = v2_body(encoded_example(example))
    answer = httpx.post(infer, content=body, headers={"content-type": "application/json"})
    answer.raise_for_status()
    say(f"mlserver answers {answer.json()['outputs'][0]['data']}")
    # name -> (url, script, the server's session for its CPU per request)
    scripts = {
        "ours": (
            ours_url,
            write_script(tmp / "ours.lua", _one_line(example), "/predict", None),
            ours_session,
        ),
        "mlserver": (
            infer,
            write_script(tmp / "mlserver.lua", body, infer.split(str(port))[1], None),
            proc.pid,  # its server and its inference workers: one session
        ),
    }
    rows: list[dict[str, Any]] = []
    for conns in connections:
        threads = 1 if conns == 1 else wrk_threads
        results: dict[str, list[WrkResult]] = {name: [] for name in scripts}
        for url, script, _ in scripts.values():  # warm-up
            run_wrk(wrk, script, url, connections=conns, duration_s=1.0, threads=threads)
        for _ in range(rounds):
            for name, (url, script, session) in scripts.items():
                results[name].append(
                    run_wrk(
                        wrk,
                        script,
                        url,
                        connections=conns,
                        duration_s=seconds,
                        threads=threads,
                        session=session,
                    )
                )
        for name, rounds_results in results.items():
            result = combine(rounds_results)
            rows.append({"target": name, **result.as_dict()})
            say(
                f"versus {name:<9} c{conns:<3} {result.rps:>8.0f} req/s  p50 {result.p50_ms:.3f} ms"
            )
    procs.stop(proc)
    return rows


def _one_line(example: Path) -> str:
    return json.dumps(json.loads(example.read_text()))


def render(doc: dict[str, Any]) -> str:
    lines = ["", "Side by side with MLServer 1.7.1 (same artifact, same customer):"]
    http = doc.get("http") or []
    by = {(r["target"], r["connections"]): r for r in http}
    for conns in sorted({r["connections"] for r in http}):
        ours, theirs = by.get(("ours", conns)), by.get(("mlserver", conns))
        if ours is None:
            continue
        line = f"  c{conns:<3} ours {ours['rps']:>8,.0f} req/s p50 {ours['p50_ms']:.3f} ms (+SHAP)"
        if theirs is not None:
            line += (
                f"   mlserver {theirs['rps']:>8,.0f} req/s p50 {theirs['p50_ms']:.3f} ms"
                f"   {ours['rps'] / theirs['rps']:.2f}x"
            )
        lines.append(line)
        mine, its = ours.get("cpu_us_per_request"), (theirs or {}).get("cpu_us_per_request")
        if mine is not None:
            cpu = f"         CPU per request: ours {mine:,.0f} µs"
            if its is not None:
                cpu += f"   mlserver {its:,.0f} µs   {its / mine:.2f}x ours"
            lines.append(cpu)
    if not http:
        lines.append("  (HTTP part skipped)")
    costs = doc.get("in_process")
    if costs:
        ours = costs["ours_predict_shap_us"]
        sk = costs["sklearn_predict_proba_us"]
        lines.append(f"In process, one row (median of {costs['repeats']:,} calls):")
        lines.append(f"  ours, predict + top-3 SHAP, response dict   {ours:8.1f} µs")
        lines.append(
            f"  ours, probability + all SHAP values         "
            f"{costs['ours_probability_and_shap_us']:8.1f} µs"
        )
        lines.append(
            f"  scikit-learn predict_proba (no SHAP)       {sk:8.1f} µs  {sk / ours:.1f}x ours"
        )
        if "onnxruntime_us" in costs:
            onnx = costs["onnxruntime_us"]
            lines.append(
                f"  onnxruntime, compiled trees (no SHAP)      {onnx:8.1f} µs  ours is "
                f"{ours / onnx:.2f}x onnxruntime (|p - sklearn| {costs['onnxruntime_gap']:.1e})"
            )
    return "\n".join(lines)
