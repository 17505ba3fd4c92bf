"""The export for MLServer: the pipeline is our encoding then the artifact, and nothing of ours."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from model_server.features import CATEGORICAL_MAPS, FEATURE_ORDER, encode_rows
from model_server.mlserver_export import (
    ExportError,
    build_pipeline,
    check_pipeline,
    export_version,
    input_rules,
    sample_frame,
)
from model_server.plain_rows import MAX_ROWS
from model_server.schemas import EXAMPLE_CUSTOMER, ChurnPredictionRequest
from model_server.v2_rows import INPUTS
from tests.integration.mlserver import MLSERVER_PYTHON

VERSION = "v2.3.1"


@pytest.fixture(scope="module")
def model(artifacts_dir: Path) -> object:
    return joblib.load(artifacts_dir / VERSION / "model.joblib")


def test_the_v2_inputs_are_the_model_api_fields_in_order() -> None:
    assert tuple(INPUTS) == FEATURE_ORDER
    assert {f for f, t in INPUTS.items() if t == "BYTES"} == set(CATEGORICAL_MAPS)


def test_the_pipeline_encodes_as_encode_rows(model: object) -> None:
    pipeline = build_pipeline(model)
    frame = pd.DataFrame({field: [value] for field, value in EXAMPLE_CUSTOMER.items()})
    encoded = pipeline.named_steps["encode"].transform(frame)
    assert np.array_equal(encoded, encode_rows([ChurnPredictionRequest(**EXAMPLE_CUSTOMER)]))
    # Every category to its code, whatever order the columns come in.
    for field, codes in CATEGORICAL_MAPS.items():
        for name, code in codes.items():
            row = frame[list(reversed(frame.columns))].assign(**{field: [name]})
            column = FEATURE_ORDER.index(field)
            assert pipeline.named_steps["encode"].transform(row)[0, column] == code


def test_the_pipeline_scores_as_the_artifact(model: object) -> None:
    assert check_pipeline(build_pipeline(model), model, rows=3_000) == 0.0


def test_the_sample_covers_every_category() -> None:
    frame, matrix = sample_frame(500)
    for field, codes in CATEGORICAL_MAPS.items():
        assert set(frame[field]) == set(codes)
    assert matrix.shape == (500, len(FEATURE_ORDER))


def test_an_unknown_category_is_refused(model: object) -> None:
    pipeline = build_pipeline(model)
    frame = pd.DataFrame({field: [value] for field, value in EXAMPLE_CUSTOMER.items()})
    with pytest.raises(ValueError, match="three-year"):
        pipeline.predict_proba(frame.assign(contract_type=["three-year"]))


def test_export_writes_what_mlserver_reads(artifacts_dir: Path, tmp_path: Path) -> None:
    done = export_version(artifacts_dir, VERSION, tmp_path, name="churn-x")
    assert done.model_dir == tmp_path / "churn-x"
    settings = json.loads((done.model_dir / "model-settings.json").read_text())
    assert settings["name"] == "churn-x"
    assert settings["implementation"] == "checked_model.CheckedSKLearnModel"
    assert (done.model_dir / "checked_model.py").is_file()
    assert settings["versions"] == [VERSION]
    parameters = settings["parameters"]
    assert parameters["version"] == VERSION
    assert parameters["content_type"] == "pd"
    assert parameters["extra"] == {"predict_fn": "predict_proba"}
    assert (done.model_dir / parameters["uri"]).resolve() == done.model_dir / "model.joblib"
    inputs = [(t["name"], t["datatype"], t["shape"]) for t in settings["inputs"]]
    assert inputs == [(name, datatype, [-1]) for name, datatype in INPUTS.items()]
    strings = [t["name"] for t in settings["inputs"] if t.get("parameters")]
    assert strings == [f for f in FEATURE_ORDER if f in CATEGORICAL_MAPS]
    server = json.loads((tmp_path / "settings.json").read_text())
    assert not {"host", "http_port", "grpc_port", "parallel_workers"} & set(server)


def test_export_refuses_a_wrong_or_tampered_artifact(artifacts_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="model file not found"):
        export_version(artifacts_dir, "v9.9.9", tmp_path)
    copy = tmp_path / "artifacts" / VERSION
    copy.mkdir(parents=True)
    (copy / "metadata.json").write_bytes((artifacts_dir / VERSION / "metadata.json").read_bytes())
    (copy / "model.joblib").write_bytes(
        (artifacts_dir / VERSION / "model.joblib").read_bytes() + b"x"
    )
    with pytest.raises(ExportError, match="checksum mismatch"):
        export_version(tmp_path / "artifacts", VERSION, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_export_never_overwrites_another_version(artifacts_dir: Path, tmp_path: Path) -> None:
    export_version(artifacts_dir, "v2.4.0", tmp_path)
    with pytest.raises(ExportError, match="already holds v2.4.0"):
        export_version(artifacts_dir, VERSION, tmp_path)
    export_version(artifacts_dir, "v2.4.0", tmp_path)  # the same version again: refreshed


UNPICKLE = """
import json, sys
import joblib, pandas as pd
pipeline = joblib.load(sys.argv[1])
frame = pd.DataFrame({k: [v] for k, v in json.loads(sys.argv[2]).items()})
ours = sorted(m for m in sys.modules if m.split(".")[0] in {
    "model_server", "gateway", "vocabulary", "cli", "outcomes", "routing_config", "httpserver"})
print(json.dumps({"probability": float(pipeline.predict_proba(frame)[0, 1]), "ours": ours}))
"""


def test_the_pickle_needs_nothing_of_ours(artifacts_dir: Path, tmp_path: Path) -> None:
    """MLServer's venv, isolated (-I: no working directory or PYTHONPATH on sys.path), loads the
    export and scores the example customer as our pipeline does."""
    if not MLSERVER_PYTHON.exists():
        pytest.fail(f"{MLSERVER_PYTHON} is not installed: `make mlserver` provides it")
    done = export_version(artifacts_dir, VERSION, tmp_path / "export")
    argv = [str(MLSERVER_PYTHON), "-I", "-c", UNPICKLE, str(done.model_dir / "model.joblib")]
    ran = subprocess.run(
        [*argv, json.dumps(EXAMPLE_CUSTOMER)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    answer = json.loads(ran.stdout)
    assert answer["ours"] == []
    model = joblib.load(artifacts_dir / VERSION / "model.joblib")
    matrix = encode_rows([ChurnPredictionRequest(**EXAMPLE_CUSTOMER)])
    assert answer["probability"] == pytest.approx(model.predict_proba(matrix)[0, 1], abs=1e-12)


def test_the_rules_are_the_schemas() -> None:
    rules = input_rules()
    by_name = {rule["name"]: rule for rule in rules["inputs"]}
    assert list(by_name) == list(FEATURE_ORDER)
    fields = ChurnPredictionRequest.model_fields
    tenure = by_name["tenure"]
    bounds = {type(m).__name__: m for m in fields["tenure"].metadata}
    assert (tenure["low"], tenure["high"]) == (bounds["Ge"].ge, bounds["Le"].le)
    assert tenure["below"] == f"Input should be greater than or equal to {bounds['Ge'].ge}"
    assert by_name["monthly_charges"]["high"] is None
    assert by_name["monthly_charges"]["not_finite"] == "Input should be a finite number"
    for field, codes in CATEGORICAL_MAPS.items():
        assert by_name[field]["categories"] == list(codes)
        prefix, suffix = by_name[field]["unknown"]
        assert suffix.endswith(", ".join(codes))
    assert (rules["min_rows"], rules["max_rows"]) == (1, MAX_ROWS)


RUNTIME = """
import json, sys
import checked_model
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest
ours = sorted(m for m in sys.modules if m.split(".")[0] in {
    "model_server", "gateway", "vocabulary", "cli", "outcomes", "routing_config", "httpserver",
    "protocols"})
errors = []
for request in json.loads(sys.argv[1]):
    try:
        checked_model.check_tensors(InferenceRequest.model_validate(request))
        errors.append(None)
    except InferenceError as error:
        errors.append(str(error))
print(json.dumps({"ours": ours, "errors": errors, "rules": checked_model.RULES}))
"""


def test_the_runtime_needs_nothing_of_ours(artifacts_dir: Path, tmp_path: Path) -> None:
    """MLServer's venv, isolated, imports the written runtime from the model's directory (as
    MLServer does) with nothing of ours, and its checks refuse what our replica refuses."""
    if not MLSERVER_PYTHON.exists():
        pytest.fail(f"{MLSERVER_PYTHON} is not installed: `make mlserver` provides it")
    done = export_version(artifacts_dir, VERSION, tmp_path / "export")
    inputs = [
        {"name": name, "datatype": datatype, "shape": [1], "data": [EXAMPLE_CUSTOMER[name]]}
        for name, datatype in INPUTS.items()
    ]
    requests = [
        {"inputs": inputs},
        {"inputs": inputs[1:]},
        {"inputs": [{**inputs[0], "datatype": "FP32"}, *inputs[1:]]},
    ]
    script = f"import sys; sys.path.insert(0, {str(done.model_dir)!r})\n" + RUNTIME
    ran = subprocess.run(
        [str(MLSERVER_PYTHON), "-I", "-c", script, json.dumps(requests)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    answer = json.loads(ran.stdout)
    assert answer["ours"] == []
    assert answer["rules"] == input_rules()
    assert answer["errors"][0] is None
    assert answer["errors"][1].startswith("input 'tenure': is missing; the model takes tenure")
    assert answer["errors"][2] == "input 'tenure': datatype FP32; the model takes INT64"
