"""A version exported by ``streamflow export mlserver``, served by a real MLServer 1.7.1: it
takes our V2 request (a tensor per model-API field) and scores every customer as our replica
does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest

from model_server.mlserver_export import Export, sample_frame
from model_server.schemas import EXAMPLE_CUSTOMER
from model_server.v2_rows import INPUTS, encode_tensors
from protocols.v2.codec import Tensor, TensorError
from tests.integration.mlserver import MLServer
from tests.integration.procs import Process, replica

VERSION = "v2.3.1"
ROWS = 500  # customers compared, in one V2 request and one /predict/batch


@pytest.fixture(scope="module")
def ours(artifacts_dir: Path, log_dir: Path) -> Iterator[Process]:
    with replica("ours-v2-3-1", VERSION, artifacts_dir).running(log_dir) as proc:
        yield proc


def customers(rows: int) -> list[dict[str, Any]]:
    """Generated customers as model-API requests, the example customer first."""
    frame, _ = sample_frame(rows - 1, seed=7)
    records = [
        {name: value.item() if hasattr(value, "item") else value for name, value in row.items()}
        for row in frame.to_dict("records")
    ]
    return [dict(EXAMPLE_CUSTOMER), *records]


def v2_request(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Our V2 request: a tensor per model-API field, shape [n], named as the field."""
    inputs = [
        {
            "name": field,
            "datatype": datatype,
            "shape": [len(rows)],
            "data": [row[field] for row in rows],
        }
        for field, datatype in INPUTS.items()
    ]
    return {"id": "compare-1", "inputs": inputs}


def test_mlserver_scores_every_customer_as_our_replica(
    mlserver: MLServer, ours: Process, artifacts_dir: Path
) -> None:
    rows = customers(ROWS)
    answer = httpx.post(f"{mlserver.url}/v2/models/churn/infer", json=v2_request(rows), timeout=60)
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert document["model_name"] == "churn"
    assert document["model_version"] == VERSION
    assert document["id"] == "compare-1"
    (output,) = document["outputs"]
    assert output["name"] == "predict_proba"
    assert output["shape"] == [ROWS, 2]
    theirs = np.asarray(output["data"]).reshape(ROWS, 2)[:, 1]

    # Unrounded, against the artifact's predict_proba on the matrix our encoding builds.
    frame, matrix = sample_frame(ROWS - 1, seed=7)
    artifact = joblib.load(artifacts_dir / VERSION / "model.joblib")
    assert np.max(np.abs(artifact.predict_proba(matrix)[:, 1] - theirs[1:])) <= 1e-9
    # Not one probability for all: the customers differ, and so do their scores.
    assert len(np.unique(np.round(theirs, 6))) > ROWS // 2

    # Against our replica's answers, which carry the probability to 4 places (the model API's).
    batch = httpx.post(f"http://{ours.address}/predict/batch", json={"customers": rows}, timeout=60)
    assert batch.status_code == 200, batch.text
    mine = np.asarray([p["churn_probability"] for p in batch.json()["predictions"]])
    assert np.max(np.abs(mine - np.round(theirs, 4))) <= 1e-9
    # Our replica's V2 answer to the very same request.
    request = {**v2_request(rows), "outputs": [{"name": "churn_probability"}]}
    v2 = httpx.post(f"http://{ours.address}/v2/models/churn/infer", json=request, timeout=60)
    assert v2.status_code == 200, v2.text
    (probability,) = v2.json()["outputs"]
    assert np.max(np.abs(np.asarray(probability["data"]) - np.round(theirs, 4))) <= 1e-9
    # /predict, one customer at a time, as the gateway's clients call it.
    for row, probability in list(zip(rows, theirs, strict=True))[:20]:
        single = httpx.post(f"http://{ours.address}/predict", json=row, timeout=10)
        assert abs(single.json()["churn_probability"] - round(probability, 4)) <= 1e-9


def test_the_inputs_may_arrive_in_any_order_and_as_n_by_1(mlserver: MLServer) -> None:
    rows = customers(5)
    request = v2_request(rows)
    base = httpx.post(f"{mlserver.url}/v2/models/churn/infer", json=request, timeout=30).json()
    shuffled = {
        "inputs": [{**tensor, "shape": [len(rows), 1]} for tensor in reversed(request["inputs"])]
    }
    again = httpx.post(f"{mlserver.url}/v2/models/churn/infer", json=shuffled, timeout=30)
    assert again.status_code == 200, again.text
    assert again.json()["outputs"][0]["data"] == base["outputs"][0]["data"]


def test_metadata_names_the_version_and_our_inputs(mlserver: MLServer, ours: Process) -> None:
    metadata = httpx.get(f"{mlserver.url}/v2/models/churn", timeout=10).json()
    assert metadata["name"] == "churn"
    assert metadata["versions"] == [VERSION]
    assert [(t["name"], t["datatype"]) for t in metadata["inputs"]] == list(INPUTS.items())
    # The input contract the gateway holds versions to: the same inputs as our replica's.
    mine = httpx.get(f"http://{ours.address}/v2/models/churn", timeout=10).json()
    assert [(t["name"], t["datatype"]) for t in mine["inputs"]] == list(INPUTS.items())
    assert [(t["name"], t["shape"]) for t in metadata["outputs"]] == [("predict_proba", [-1, 2])]


def with_value(rows: list[dict[str, Any]], row: int, field: str, value: Any) -> dict[str, Any]:
    """The V2 request of ``rows`` with ``field`` of one row set to ``value``."""
    request = v2_request(rows)
    for tensor in request["inputs"]:
        if tensor["name"] == field:
            tensor["data"][row] = value
    return request


def ours_refuses(request: dict[str, Any]) -> str:
    """Our replica's V2 error for a request (its codec, then its rows by the schema's rules),
    with NaN where JSON can only say null (the gateway sends a binary NaN to MLServer so)."""
    try:
        encode_tensors(
            [
                Tensor(
                    t["name"],
                    t["datatype"],
                    tuple(t["shape"]),
                    [str(v).encode() for v in t["data"]]
                    if t["datatype"] == "BYTES"
                    else np.asarray([np.nan if v is None else v for v in t["data"]], dtype=float),
                )
                for t in request["inputs"]
            ]
        )
    except TensorError as error:
        return str(error)
    raise AssertionError("our rules accept the request")


BAD_VALUES = [
    ("tenure", -1),  # scored by MLServer's own runtime
    ("tenure", 121),
    ("contract_type", "three-year"),  # its own runtime's 500
    ("monthly_charges", None),  # NaN: JSON's null, as the gateway sends a binary NaN on
    ("total_charges", -0.01),
    ("num_support_tickets", -3),
    ("internet_service", "cable"),
]


@pytest.mark.parametrize(("field", "value"), BAD_VALUES)
def test_a_value_our_replica_refuses_is_a_400_naming_the_input_and_row(
    mlserver: MLServer, field: str, value: Any
) -> None:
    rows = customers(3)
    request = with_value(rows, 2, field, value)
    answer = httpx.post(f"{mlserver.url}/v2/models/churn/infer", json=request, timeout=30)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    expected = ours_refuses(request)
    assert expected.startswith(f"input '{field}': row 2: ")
    # MLServer's inference worker puts the error's class before its message.
    assert error in (expected, f"mlserver.errors.InferenceError: {expected}")


def test_the_first_row_refused_and_in_it_the_first_input_is_named(mlserver: MLServer) -> None:
    rows = customers(4)
    request = with_value(rows, 3, "tenure", -5)
    for tensor in request["inputs"]:
        if tensor["name"] == "payment_method":
            tensor["data"][1] = "cash"
        if tensor["name"] == "total_charges":
            tensor["data"][1] = -1.0
    answer = httpx.post(f"{mlserver.url}/v2/models/churn/infer", json=request, timeout=30)
    assert answer.status_code == 400, answer.text
    expected = ours_refuses(request)
    assert expected.startswith("input 'total_charges': row 1: ")
    assert answer.json()["error"].endswith(expected)


@pytest.mark.parametrize(
    ("change", "named", "says"),
    [
        (lambda r: {"inputs": r["inputs"][1:]}, "tenure", "is missing"),
        (lambda r: {"inputs": [*r["inputs"], {**r["inputs"][0], "name": "age"}]}, "age", "is not"),
        (
            lambda r: {"inputs": [_set(r["inputs"][0], datatype="FP64"), *r["inputs"][1:]]},
            "tenure",
            "datatype FP64; the model takes INT64",
        ),
        (
            lambda r: {"inputs": [*r["inputs"][:-1], _set(r["inputs"][-1], shape=[3, 2])]},
            "senior_citizen",
            "shape [3, 2]",
        ),
        (
            lambda r: {"inputs": [_set(r["inputs"][0], data=[1, 2.5, 3])] + r["inputs"][1:]},
            "tenure",
            "INT64 data must be integers",
        ),
    ],
)
def test_a_request_not_of_our_inputs_is_a_400_naming_the_input(
    mlserver: MLServer, change: Any, named: str, says: str
) -> None:
    request = change(v2_request(customers(3)))
    answer = httpx.post(f"{mlserver.url}/v2/models/churn/infer", json=request, timeout=30)
    assert answer.status_code == 400, answer.text
    assert f"input '{named}': {says}" in answer.json()["error"]


def _set(tensor: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**tensor, **changes}


def test_a_request_past_the_row_limit_is_a_400(mlserver: MLServer) -> None:
    answer = httpx.post(
        f"{mlserver.url}/v2/models/churn/infer", json=v2_request(customers(1001)), timeout=60
    )
    assert answer.status_code == 400, answer.text
    assert "input 'tenure': holds 1001 rows; a request takes at most 1000" in answer.text


def test_tritonclient_json_mode_against_mlserver(mlserver: MLServer, ours: Process) -> None:
    import tritonclient.http as triton

    row = dict(EXAMPLE_CUSTOMER)
    client = triton.InferenceServerClient(mlserver.address)
    try:
        inputs = []
        for field, datatype in INPUTS.items():
            dtype = {"INT64": np.int64, "FP64": np.float64, "BOOL": np.bool_}.get(datatype, object)
            tensor = triton.InferInput(field, [1], datatype)
            tensor.set_data_from_numpy(np.asarray([row[field]], dtype=dtype), binary_data=False)
            inputs.append(tensor)
        outputs = [triton.InferRequestedOutput("predict_proba", binary_data=False)]
        result = client.infer("churn", inputs, outputs=outputs)
    finally:
        client.close()
    assert result.get_response()["model_version"] == VERSION
    probability = float(result.as_numpy("predict_proba")[0, 1])
    single = httpx.post(f"http://{ours.address}/predict", json=row, timeout=10).json()
    assert abs(single["churn_probability"] - round(probability, 4)) <= 1e-9


def test_the_export_directory_is_what_mlserver_reads(mlserver_export: Export) -> None:
    names = sorted(
        p.relative_to(mlserver_export.directory).as_posix()
        for p in mlserver_export.directory.rglob("*")
        if p.is_file()
    )
    assert names == [
        "churn/checked_model.py",
        "churn/model-settings.json",
        "churn/model.joblib",
        "settings.json",
    ]
