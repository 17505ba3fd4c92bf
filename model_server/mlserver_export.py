"""Export a version as a model MLServer's scikit-learn runtime serves with our V2 inputs.

The directory written is what ``mlserver start DIR`` reads::

    DIR/settings.json                  the server's settings (no ports: MLSERVER_HTTP_PORT etc.)
    DIR/NAME/model-settings.json       the model: name, version, predict_proba, inputs metadata
    DIR/NAME/model.joblib              a scikit-learn Pipeline: the encoding, then the artifact
    DIR/NAME/checked_model.py          the runtime: MLServer's scikit-learn one, checking inputs

The request it serves is ours (the V2 model contract): one tensor per model-API field, shape
``[n]``, named as the field (``tenure`` INT64, ``contract_type`` BYTES, ...). MLServer's pandas
codec (``content_type: pd`` on the model) turns the named inputs into the columns of one
DataFrame, and the inputs metadata marks the BYTES inputs as strings (``content_type: str``) so
JSON and binary requests alike reach the pipeline as text. The pipeline's first step is a
ColumnTransformer with one transformer per feature, in ``FEATURE_ORDER`` (a ColumnTransformer
outputs its transformers in their order, whatever the DataFrame's column order): numbers pass
through, each category becomes its code in ``CATEGORICAL_MAPS`` through an OrdinalEncoder whose
categories are listed in code order. Its output is the very matrix ``encode_rows`` builds, so the
probability MLServer answers (column 1 of ``predict_proba``) is the artifact's on the same
customer. The export checks that on a sample of customers before it writes anything.

The pickle holds scikit-learn and numpy objects only: MLServer's environment unpickles it with
the same scikit-learn and numpy as ours and nothing of this project. The runtime
(``model_server/mlserver_runtime.py``, written as text) is MLServer's scikit-learn runtime that
first checks each request as our replicas do: the inputs' names, datatypes and shapes, the row
count, each value's bounds, finiteness and category. The rules are read here from the model
API's schema (``model_server.plain_rows``, which reads them from ``ChurnPredictionRequest``) and
each message is pydantic's for a value it refuses, so MLServer answers a 400 whose error reads as
ours (``input 'tenure': row 0: Input should be greater than or equal to 0``) instead of scoring
a negative tenure or answering an unknown category with a 500, which the gateway would count
against the version. What the exported model does not do: explain (no SHAP: no ``risk_tier`` or
``top_reasons`` output either).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from model_server import mlserver_runtime
from model_server.artifact import ArtifactError, load_artifact
from model_server.features import CATEGORICAL_MAPS, FEATURE_ORDER
from model_server.plain_rows import COLUMNS, MAX_ROWS, MIN_ROWS
from model_server.schemas import EXAMPLE_CUSTOMER, ChurnPredictionRequest

# The model's V2 inputs, name -> datatype, as our replicas take them (one definition).
from model_server.v2_rows import INPUTS

DEFAULT_MODEL_NAME = "churn"
MODEL_FILE = "model.joblib"
SETTINGS_FILE = "settings.json"
MODEL_SETTINGS_FILE = "model-settings.json"
RUNTIME_FILE = f"{mlserver_runtime.MODULE}.py"
IMPLEMENTATION = f"{mlserver_runtime.MODULE}.{mlserver_runtime.CLASS}"
# A category no one uses, whose repr marks where the refused value goes in pydantic's message.
_PROBE = "__value__"
# The runtime's output holding [P(stay), P(churn)] per row; routing.yaml's score reads column 1.
SCORE_OUTPUT = "predict_proba"
SCORE_COLUMN = 1
# The export refuses a pipeline whose probabilities differ from the artifact's by more than this
# on its sample (they are the same arithmetic on the same matrix: in practice 0).
TOLERANCE = 1e-12
SAMPLE_ROWS = 2_000
SAMPLE_SEED = 20261203
# A model's name is a path segment on /v2/models/{name} and the model's directory.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


class ExportError(Exception):
    """The version cannot be exported; the message is the one-line reason."""


@dataclass(frozen=True, slots=True)
class Export:
    directory: Path
    model_dir: Path
    name: str
    version: str
    max_gap: float  # the largest |pipeline - artifact| probability on the sample
    rows_checked: int


def build_pipeline(model: Any) -> Any:
    """The encoding of ``model_server.features`` as scikit-learn steps, then ``model``."""
    # Imported here: only an export needs pandas and the pipeline classes.
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    steps: list[tuple[str, Any, list[str]]] = []
    for field in FEATURE_ORDER:
        codes = CATEGORICAL_MAPS.get(field)
        if codes is None:
            steps.append((field, "passthrough", [field]))
            continue
        ordered = sorted(codes, key=codes.__getitem__)
        if [codes[name] for name in ordered] != list(range(len(ordered))):
            # An OrdinalEncoder's codes are positions: gaps or repeats cannot be expressed.
            raise ExportError(f"{field}: codes {codes} are not 0..{len(codes) - 1}")
        encoder = OrdinalEncoder(categories=[ordered], dtype=np.float64)
        steps.append((field, encoder, [field]))
    encode = ColumnTransformer(steps, remainder="drop", sparse_threshold=0.0)
    # Fitting only records the columns (the categories are given): one row of each category.
    encode.fit(pd.DataFrame(_category_rows()))
    return Pipeline([("encode", encode), ("model", model)])


def _category_rows() -> dict[str, list[Any]]:
    rows = max(len(codes) for codes in CATEGORICAL_MAPS.values())
    columns: dict[str, list[Any]] = {}
    for field in FEATURE_ORDER:
        codes = CATEGORICAL_MAPS.get(field)
        if codes is not None:
            names = list(codes)
            columns[field] = [names[i % len(names)] for i in range(rows)]
        else:
            columns[field] = [_zero(field)] * rows
    return columns


def _zero(field: str) -> Any:
    datatype = INPUTS[field]
    return False if datatype == "BOOL" else 0 if datatype == "INT64" else 0.0


def sample_frame(rows: int = SAMPLE_ROWS, seed: int = SAMPLE_SEED) -> tuple[Any, np.ndarray]:
    """Customers as MLServer's pandas codec hands them over (a column per input, in its dtype),
    and the same customers as ``encode_rows`` encodes them."""
    import pandas as pd

    # Imported here: training pulls in the model classes; only an export samples customers.
    from model_server.train import draw_customers

    matrix, _, _ = draw_customers(rows, seed)
    columns: dict[str, Any] = {}
    for i, field in enumerate(FEATURE_ORDER):
        values = matrix[:, i]
        codes = CATEGORICAL_MAPS.get(field)
        datatype = INPUTS[field]
        if codes is not None:
            names = {code: name for name, code in codes.items()}
            columns[field] = pd.Series([names[int(v)] for v in values], dtype=object)
        elif datatype == "BOOL":
            columns[field] = pd.Series(values.astype(bool))
        elif datatype == "INT64":
            columns[field] = pd.Series(values.astype(np.int64))
        else:
            columns[field] = pd.Series(values)
    return pd.DataFrame(columns), matrix


def check_pipeline(pipeline: Any, model: Any, rows: int = SAMPLE_ROWS) -> float:
    """The largest probability gap between the pipeline on named columns and the artifact on
    the encoded matrix, over a seeded sample; ExportError past ``TOLERANCE``."""
    frame, matrix = sample_frame(rows)
    ours = model.predict_proba(matrix)[:, SCORE_COLUMN]
    # Columns in reverse: the pipeline must not depend on the order the inputs arrive in.
    theirs = pipeline.predict_proba(frame[list(reversed(frame.columns))])[:, SCORE_COLUMN]
    gap = float(np.max(np.abs(ours - theirs)))
    if not gap <= TOLERANCE:
        raise ExportError(f"the pipeline's probabilities differ from the artifact's by {gap:.3g}")
    return gap


def input_rules() -> dict[str, Any]:
    """What the runtime checks, per input in the model API's order: its datatype, its bounds
    and categories as the schema has them, and pydantic's message for each refusal (got by
    validating the example customer with a refused value), so the wording is the model API's."""
    inputs = []
    for column in COLUMNS:
        rule: dict[str, Any] = {"name": column.name, "datatype": INPUTS[column.name]}
        if column.categories is not None:
            message = _refusal(column.name, _PROBE)
            if message.count(repr(_PROBE)) != 1:
                raise ExportError(f"{column.name}: cannot place the value in {message!r}")
            rule["categories"] = list(column.categories)
            rule["unknown"] = message.split(repr(_PROBE))
        elif column.kind is not bool:
            rule["low"], rule["high"] = column.low, column.high
            rule["not_finite"] = _refusal(column.name, float("nan"))
            rule["below"] = None if column.low is None else _refusal(column.name, column.low - 1)
            rule["above"] = None if column.high is None else _refusal(column.name, column.high + 1)
        inputs.append(rule)
    return {"inputs": inputs, "min_rows": MIN_ROWS, "max_rows": MAX_ROWS}


def _refusal(field: str, value: Any) -> str:
    """pydantic's message for ``field`` holding ``value`` in an otherwise valid request."""
    try:
        ChurnPredictionRequest.model_validate({**EXAMPLE_CUSTOMER, field: value})
    except ValidationError as error:
        for problem in error.errors(include_url=False):
            if problem["loc"] == (field,):
                return str(problem["msg"])
    raise ExportError(f"{field}: the schema accepts {value!r}, which the export expects refused")


def model_settings(name: str, version: str) -> dict[str, Any]:
    """model-settings.json: the runtime, the version it answers with and lists in its metadata,
    ``predict_proba`` by default, the pandas request codec and the inputs' metadata."""
    inputs = []
    for field in FEATURE_ORDER:
        tensor: dict[str, Any] = {"name": field, "datatype": INPUTS[field], "shape": [-1]}
        if INPUTS[field] == "BYTES":
            # Decoded as text whether the request sent JSON strings or bytes.
            tensor["parameters"] = {"content_type": "str"}
        inputs.append(tensor)
    return {
        "name": name,
        "implementation": IMPLEMENTATION,
        "platform": "sklearn",
        "versions": [version],
        "inputs": inputs,
        "outputs": [{"name": SCORE_OUTPUT, "datatype": "FP64", "shape": [-1, 2]}],
        "parameters": {
            "uri": f"./{MODEL_FILE}",
            "version": version,
            "content_type": "pd",
            "extra": {"predict_fn": SCORE_OUTPUT},
        },
    }


def server_settings() -> dict[str, Any]:
    """settings.json: no host, ports or workers, so MLSERVER_HOST, MLSERVER_HTTP_PORT,
    MLSERVER_PARALLEL_WORKERS, ... choose them (a value in the file wins over the environment)."""
    return {"debug": False}


def export_version(
    artifacts: Path, version: str, out: Path, *, name: str = DEFAULT_MODEL_NAME
) -> Export:
    """Verify and load ``artifacts/VERSION/model.joblib``, check the pipeline, write ``out``."""
    import joblib

    if not _NAME.fullmatch(name):
        raise ExportError(f"model name {name!r}: letters, digits, '_', '-' and '.' only")
    model_path = artifacts / version / MODEL_FILE
    try:
        artifact = load_artifact(model_path, version)
    except ArtifactError as exc:
        raise ExportError(str(exc)) from None
    pipeline = build_pipeline(artifact.model)
    gap = check_pipeline(pipeline, artifact.model)
    model_dir = out / name
    existing = _existing_version(model_dir)
    if existing not in (None, version):
        raise ExportError(f"{model_dir} already holds {existing}; choose another --out")
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, model_dir / MODEL_FILE)
    (model_dir / RUNTIME_FILE).write_text(mlserver_runtime.render(input_rules()))
    _write_json(model_dir / MODEL_SETTINGS_FILE, model_settings(name, version))
    _write_json(out / SETTINGS_FILE, server_settings())
    return Export(out, model_dir, name, version, gap, SAMPLE_ROWS)


def _existing_version(model_dir: Path) -> str | None:
    try:
        settings = json.loads((model_dir / MODEL_SETTINGS_FILE).read_text())
        version = settings["parameters"]["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return version if isinstance(version, str) else None


def _write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2) + "\n")
