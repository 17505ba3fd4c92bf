"""Side by side: our replica against MLServer on the same V2 request, and per-row costs in process.

MLServer serves the version as ``streamflow export mlserver`` writes it (a scikit-learn Pipeline:
our encoding, then the artifact), so both servers take the very same request: the Open Inference
Protocol's, one named tensor per model-API field. It runs from ``make mlserver``'s virtualenv
(``.venv-mlserver``, the one the integration tests use), to which ``make mlserver-bench`` adds
onnxruntime and skl2onnx for the in-process reference: never dependencies of the project.
MLServer answers with the probabilities only (``predict_proba``); our replica, given no
``outputs``, answers all three of its outputs: the probability, the tier and the top 3 SHAP
reasons.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.procs import REPO_ROOT, Procs, free_port
from bench.wrk import WrkResult, combine, run_wrk, write_script

VENV = REPO_ROOT / ".venv-mlserver"
MODEL_NAME = "churn"
INFER_PATH = f"/v2/models/{MODEL_NAME}/infer"


def ensure_venv(say: Callable[[str], None]) -> Path:
    """``make mlserver-bench``'s virtualenv: made on first use, a no-op once up to date."""
    say(f"MLServer and onnxruntime in {VENV.name} (make mlserver-bench)")
    subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO_ROOT), "mlserver-bench"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return VENV / "bin" / "python"


def mlserver_env(http_port: int, workers: int, metrics_dir: Path) -> dict[str, str]:
    """MLServer's settings the exported settings.json leaves to the environment."""
    metrics_dir.mkdir(parents=True, exist_ok=True)
    grpc_port = metrics_port = http_port
    while len({http_port, grpc_port, metrics_port}) < 3:  # all three its own
        grpc_port, metrics_port = free_port(), free_port()
    return {
        "MLSERVER_HOST": "127.0.0.1",
        "MLSERVER_HTTP_PORT": str(http_port),
        "MLSERVER_GRPC_PORT": str(grpc_port),
        "MLSERVER_METRICS_PORT": str(metrics_port),
        "MLSERVER_PARALLEL_WORKERS": str(workers),
        # Its multiprocess metrics' files: in the run's directory, not the working directory.
        "MLSERVER_METRICS_DIR": str(metrics_dir),
    }


def v2_body(customers: list[dict[str, Any]]) -> str:
    """Our V2 request for these customers: one tensor per model-API field, shape [n]."""
    from model_server.v2_rows import INPUTS

    inputs = [
        {
            "name": name,
            "datatype": datatype,
            "shape": [len(customers)],
            "data": [customer[name] for customer in customers],
        }
        for name, datatype in INPUTS.items()
    ]
    return json.dumps({"inputs": inputs}, separators=(",", ":"))


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
    artifacts: Path,
    version: str,
    ours: str,
    example: Path,
    ours_session: int | None = None,
    connections: list[int],
    rounds: int,
    seconds: float,
    wrk_threads: int,
    mlserver_workers: int,
    say: Callable[[str], None],
) -> list[dict[str, Any]]:
    """The same V2 request to our replica and to MLServer serving the export, and our /predict
    for the same customer beside them, in interleaved rounds."""
    from model_server.mlserver_export import export_version

    exported = export_version(artifacts, version, tmp / "mlserver-model")
    port = free_port()
    mlserver_bin = venv_python.parent / "mlserver"
    env = mlserver_env(port, mlserver_workers, tmp / "mlserver-metrics")
    proc = procs.start("mlserver", [str(mlserver_bin), "start", str(exported.directory)], env)
    proc.wait_http(f"http://127.0.0.1:{port}/v2/models/{MODEL_NAME}/ready", timeout=180)
    customer = json.loads(example.read_text())
    body = v2_body([customer])
    theirs = _probability(f"http://127.0.0.1:{port}{INFER_PATH}", body, "predict_proba")
    mine = _probability(f"http://{ours}{INFER_PATH}", body, "churn_probability")
    say(f"same request: mlserver answers {theirs:.6f}, ours {mine} (4 places, as /predict)")
    if round(theirs, 4) != mine:
        raise ValueError(f"MLServer answers {theirs}, our replica {mine}: not the same model")
    # name -> (url, script, the server's session for its CPU per request)
    scripts = {
        "ours": (
            f"http://{ours}{INFER_PATH}",
            write_script(tmp / "ours-v2.lua", body, INFER_PATH, None),
            ours_session,
        ),
        "mlserver": (
            f"http://127.0.0.1:{port}{INFER_PATH}",
            write_script(tmp / "mlserver.lua", body, INFER_PATH, None),
            proc.pid,  # its server and its inference workers: one session
        ),
        "ours /predict": (
            f"http://{ours}/predict",
            write_script(tmp / "ours.lua", _one_line(example), "/predict", None),
            ours_session,
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
                f"versus {name:<13} c{conns:<3} {result.rps:>8.0f} req/s  "
                f"p50 {result.p50_ms:.3f} ms"
                + (f"  ERRORS {result.errors}" if result.errors else "")
            )
    procs.stop(proc)
    return rows


def _probability(url: str, body: str, output: str) -> float:
    answer = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=30)
    answer.raise_for_status()
    (tensor,) = [t for t in answer.json()["outputs"] if t["name"] == output]
    return float(tensor["data"][-1])  # predict_proba's row is [P(stay), P(churn)]


def _one_line(example: Path) -> str:
    return json.dumps(json.loads(example.read_text()))


def render(doc: dict[str, Any]) -> str:
    lines = [
        "",
        "Side by side with MLServer 1.7.1 (the same V2 request: one named tensor per field;",
        "MLServer serves `streamflow export mlserver`'s pipeline and answers predict_proba):",
    ]
    http = doc.get("http") or []
    by = {(r["target"], r["connections"]): r for r in http}
    for conns in sorted({r["connections"] for r in http}):
        ours, theirs = by.get(("ours", conns)), by.get(("mlserver", conns))
        if ours is None:
            continue
        line = (
            f"  c{conns:<3} ours V2 {ours['rps']:>8,.0f} req/s p50 {ours['p50_ms']:.3f} ms (+SHAP)"
        )
        if theirs is not None:
            line += (
                f"   mlserver {theirs['rps']:>8,.0f} req/s p50 {theirs['p50_ms']:.3f} ms"
                f"   {ours['rps'] / theirs['rps']:.2f}x"
            )
        lines.append(line)
        predict = by.get(("ours /predict", conns))
        if predict is not None:
            lines.append(
                f"       ours /predict {predict['rps']:>8,.0f} req/s p50 {predict['p50_ms']:.3f} ms"
                + (f"   {predict['rps'] / theirs['rps']:.2f}x mlserver" if theirs else "")
            )
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
