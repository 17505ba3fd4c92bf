"""Triton's own client (tritonclient.http) against a real replica process on 127.0.0.1: health,
metadata, and inference in JSON and in its default binary mode, with the probability equal to
/predict's for the same customers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from model_server.schemas import EXAMPLE_CUSTOMER
from model_server.v2_rows import INPUTS
from tests.integration.procs import Process, replica
from tests.model_server.test_api import customers

NUMPY = {"INT64": np.int64, "FP64": np.float64, "BOOL": np.bool_, "BYTES": np.object_}


@pytest.fixture(scope="module")
def server(artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    logs = tmp_path_factory.mktemp("logs")
    with replica("v2-replica", "v2.3.1", artifacts_dir).running(logs) as proc:
        yield proc


@pytest.fixture(scope="module")
def client(server: Process) -> Iterator[triton.InferenceServerClient]:
    made = triton.InferenceServerClient(url=server.address, network_timeout=30.0)
    try:
        yield made
    finally:
        made.close()


def inputs_of(rows: list[dict[str, Any]], binary: bool) -> list[triton.InferInput]:
    made = []
    for name, datatype in INPUTS.items():
        values = [row[name] for row in rows]
        array = np.array(
            [v.encode() for v in values] if datatype == "BYTES" else values,
            dtype=NUMPY[datatype],
        )
        tensor = triton.InferInput(name, [len(rows)], datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        made.append(tensor)
    return made


def predicted(server: Process, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = httpx.post(f"http://{server.address}/predict/batch", json={"customers": rows})
    predictions: list[dict[str, Any]] = response.json()["predictions"]
    return predictions


def test_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("churn")
    assert client.is_model_ready("churn", "v2.3.1")
    assert not client.is_model_ready("iris")
    metadata = client.get_model_metadata("churn")
    assert metadata["versions"] == ["v2.3.1"]
    assert {i["name"]: i["datatype"] for i in metadata["inputs"]} == INPUTS
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]


def test_one_customer_equals_predict(server: Process, client: triton.InferenceServerClient) -> None:
    single = httpx.post(f"http://{server.address}/predict", json=EXAMPLE_CUSTOMER).json()
    for binary in (False, True):
        result = client.infer("churn", inputs_of([EXAMPLE_CUSTOMER], binary), request_id="c-1")
        probability = result.as_numpy("churn_probability")
        assert probability is not None and probability.tolist() == [single["churn_probability"]]
        response = result.get_response()
        assert response["model_name"] == "churn"
        assert response["model_version"] == "v2.3.1"
        assert response["id"] == "c-1"


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_a_batch_equals_predict_batch(
    server: Process, client: triton.InferenceServerClient, binary: bool
) -> None:
    rows = customers(64)
    expected = predicted(server, rows)
    outputs = [
        triton.InferRequestedOutput(name, binary_data=binary)
        for name in ("churn_probability", "risk_tier", "top_reasons")
    ]
    result = client.infer("churn", inputs_of(rows, binary), outputs=outputs, model_version="v2.3.1")
    probability = result.as_numpy("churn_probability")
    tiers = result.as_numpy("risk_tier")
    reasons = result.as_numpy("top_reasons")
    assert probability is not None and tiers is not None and reasons is not None
    assert probability.dtype == np.float64
    assert probability.tolist() == [p["churn_probability"] for p in expected]
    assert [t.decode() if isinstance(t, bytes) else t for t in tiers.tolist()] == [
        p["risk_tier"] for p in expected
    ]
    assert [json.loads(r) for r in reasons.tolist()] == [p["top_reasons"] for p in expected]


def test_default_mode_and_one_output(client: triton.InferenceServerClient) -> None:
    # No outputs named: tritonclient asks for every output in binary (binary_data_output).
    result = client.infer("churn", inputs_of(customers(5), True))
    assert {o["name"] for o in result.get_response()["outputs"]} == {
        "churn_probability",
        "risk_tier",
        "top_reasons",
    }
    only = client.infer(
        "churn",
        inputs_of(customers(5), True),
        outputs=[triton.InferRequestedOutput("churn_probability")],
    )
    assert [o["name"] for o in only.get_response()["outputs"]] == ["churn_probability"]
    assert (
        only.as_numpy("churn_probability").tolist() == result.as_numpy("churn_probability").tolist()
    )


def test_a_bad_value_is_an_error_naming_the_input(client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.infer("churn", inputs_of([{**EXAMPLE_CUSTOMER, "tenure": -1}], True))
    assert "input 'tenure': row 0: Input should be greater than or equal to 0" in str(caught.value)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("iris", inputs_of([EXAMPLE_CUSTOMER], False))
    assert "unknown model 'iris'" in str(caught.value)
