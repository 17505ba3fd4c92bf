"""The replica's Open Inference Protocol (model_server/endpoints/v2.py, v2_model.py): metadata,
readiness, inference in JSON and binary, the outputs a client picks, and errors as
{"error": ...}; every answer the same as the model API's for the same customers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from model_server.app import create_app
from model_server.schemas import EXAMPLE_CUSTOMER
from model_server.settings import ModelSettings
from protocols.v2.codec import RequestedOutput, decode_response
from tests.model_server.test_api import customers
from tests.model_server.v2_requests import v2_body

INFER = "/v2/models/churn/infer"


@pytest.fixture(scope="module")
def client(app: FastAPI) -> TestClient:
    return TestClient(app)  # no `with`: the module's lifespan already ran


def infer(client: TestClient, body: bytes, headers: dict[str, str], path: str = INFER) -> Any:
    return client.post(path, content=body, headers=headers)


def outputs_of(response: Any) -> dict[str, Any]:
    length = response.headers.get("inference-header-content-length")
    decoded = decode_response(response.content, None if length is None else int(length))
    return {name: tensor.data for name, tensor in decoded.outputs.items()}


def test_health_and_server_metadata(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    server = client.get("/v2").json()
    assert server["name"] == "streamflow-model-server"
    assert "binary_tensor_data" in server["extensions"]


def test_model_metadata_lists_inputs_and_outputs(client: TestClient) -> None:
    metadata = client.get("/v2/models/churn").json()
    assert metadata["name"] == "churn" and metadata["versions"] == ["v2.3.1"]
    assert metadata["platform"]
    assert metadata["inputs"][0] == {"name": "tenure", "datatype": "INT64", "shape": [-1]}
    assert [(i["name"], i["datatype"]) for i in metadata["inputs"]] == [
        ("tenure", "INT64"),
        ("monthly_charges", "FP64"),
        ("total_charges", "FP64"),
        ("contract_type", "BYTES"),
        ("payment_method", "BYTES"),
        ("num_support_tickets", "INT64"),
        ("internet_service", "BYTES"),
        ("streaming_services", "INT64"),
        ("paperless_billing", "BOOL"),
        ("senior_citizen", "BOOL"),
    ]
    assert metadata["outputs"] == [
        {"name": "churn_probability", "datatype": "FP64", "shape": [-1]},
        {"name": "risk_tier", "datatype": "BYTES", "shape": [-1]},
        {"name": "top_reasons", "datatype": "BYTES", "shape": [-1]},
    ]
    assert client.get("/v2/models/churn/versions/v2.3.1").json() == metadata
    assert client.get("/v2/models/churn/ready").json() == {"name": "churn", "ready": True}
    assert client.get("/v2/models/churn/versions/v2.3.1/ready").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("GET", "/v2/models/iris", "unknown model 'iris'; this server serves 'churn'"),
        ("GET", "/v2/models/iris/ready", "unknown model 'iris'; this server serves 'churn'"),
        (
            "GET",
            "/v2/models/churn/versions/v9",
            "unknown version 'v9' of model 'churn'; this server serves 'v2.3.1'",
        ),
        (
            "GET",
            "/v2/models/churn/versions/v9/ready",
            "unknown version 'v9' of model 'churn'; this server serves 'v2.3.1'",
        ),
        ("POST", "/v2/models/iris/infer", "unknown model 'iris'; this server serves 'churn'"),
        (
            "POST",
            "/v2/models/churn/versions/v2.4.0/infer",
            "unknown version 'v2.4.0' of model 'churn'; this server serves 'v2.3.1'",
        ),
    ],
)
def test_unknown_models_and_versions_are_404s(
    client: TestClient, method: str, path: str, message: str
) -> None:
    body, headers = v2_body([EXAMPLE_CUSTOMER])
    response = client.request(method, path, content=body, headers=headers)
    assert response.status_code == 404
    assert response.json() == {"error": message}


def test_one_customer_scores_as_predict_does(client: TestClient) -> None:
    predicted = client.post("/predict", json=EXAMPLE_CUSTOMER).json()
    body, headers = v2_body([EXAMPLE_CUSTOMER], request_id="req-1")
    response = infer(client, body, headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-model-version"] == "v2.3.1"
    document = response.json()
    assert document["model_name"] == "churn"
    assert document["model_version"] == "v2.3.1"
    assert document["id"] == "req-1"
    assert [o["name"] for o in document["outputs"]] == [
        "churn_probability",
        "risk_tier",
        "top_reasons",
    ]
    outputs = outputs_of(response)
    assert outputs["churn_probability"].tolist() == [predicted["churn_probability"]]
    assert outputs["risk_tier"] == [predicted["risk_tier"].encode()]
    assert [json.loads(r) for r in outputs["top_reasons"]] == [predicted["top_reasons"]]
    versioned = infer(client, body, headers, "/v2/models/churn/versions/v2.3.1/infer")
    assert versioned.content == response.content


def test_a_batch_scores_as_predict_batch_does(client: TestClient) -> None:
    rows = customers(200)
    batch = client.post("/predict/batch", json={"customers": rows}).json()["predictions"]
    for binary in (False, True):
        body, headers = v2_body(rows, binary=binary, binary_data_output=binary)
        response = infer(client, body, headers)
        assert response.status_code == 200
        outputs = outputs_of(response)
        assert outputs["churn_probability"].tolist() == [p["churn_probability"] for p in batch]
        assert [t.decode() for t in outputs["risk_tier"]] == [p["risk_tier"] for p in batch]
        assert [orjson.loads(r) for r in outputs["top_reasons"]] == [
            p["top_reasons"] for p in batch
        ]
        # Each reasons element is the very JSON the model API writes for that row.
        assert outputs["top_reasons"][7] == orjson.dumps(batch[7]["top_reasons"])


def test_a_binary_answer_is_tritons_layout(client: TestClient) -> None:
    body, headers = v2_body(customers(3), binary=True, binary_data_output=True)
    response = infer(client, body, headers)
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers["inference-header-content-length"])
    header = orjson.loads(response.content[:length])
    sizes = [o["parameters"]["binary_data_size"] for o in header["outputs"]]
    assert sizes[0] == 3 * 8
    assert length + sum(sizes) == len(response.content)
    assert all("data" not in o for o in header["outputs"])


def test_the_client_picks_the_outputs_and_their_form(client: TestClient) -> None:
    rows = customers(4)
    asked = [RequestedOutput("risk_tier", binary=True), RequestedOutput("churn_probability")]
    body, headers = v2_body(rows, outputs=asked)
    response = infer(client, body, headers)
    length = int(response.headers["inference-header-content-length"])
    header = orjson.loads(response.content[:length])
    assert [o["name"] for o in header["outputs"]] == ["risk_tier", "churn_probability"]
    assert "binary_data_size" in header["outputs"][0]["parameters"]
    assert "data" in header["outputs"][1]
    full = outputs_of(infer(client, *v2_body(rows)))
    assert outputs_of(response)["churn_probability"].tolist() == full["churn_probability"].tolist()


def test_no_reasons_asked_gives_the_same_probabilities(client: TestClient) -> None:
    rows = customers(300)
    with_reasons = outputs_of(infer(client, *v2_body(rows)))
    body, headers = v2_body(rows, outputs=[RequestedOutput("churn_probability")])
    without = outputs_of(infer(client, body, headers))
    assert list(without) == ["churn_probability"]
    assert without["churn_probability"].tolist() == with_reasons["churn_probability"].tolist()


def test_v2_predictions_are_counted(client: TestClient) -> None:
    def v2_count() -> float:
        total = 0.0
        for line in client.get("/metrics").text.splitlines():
            if line.startswith("model_predictions_total{") and 'endpoint="v2"' in line:
                total += float(line.rpartition(" ")[2])
        return total

    before = v2_count()
    infer(client, *v2_body(customers(5)))
    assert v2_count() == before + 5


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "the body is not valid JSON"),
        (b'{"inputs": []}', "'inputs' must be a non-empty list of tensors"),
        (
            b'{"inputs": [{"name": "tenure", "datatype": "INT64", "shape": [2], "data": [1]}]}',
            "input 'tenure': shape [2] holds 2 elements, data has 1",
        ),
        (
            b'{"inputs": [{"name": "tenure", "datatype": "INT64", "shape": [1000000000000],'
            b' "data": [1]}]}',
            "input 'tenure': shape [1000000000000] holds more than the 1000 elements",
        ),
        (
            b'{"inputs": [{"name": "tenure", "datatype": "INT64", "shape": [1], "data": [1.5]}]}',
            "input 'tenure': INT64 data must be integers, not fractions",
        ),
        (
            b'{"inputs": [{"name": "tenure", "datatype": "INT65", "shape": [1], "data": [1]}]}',
            "input 'tenure': unknown datatype 'INT65'",
        ),
        (
            b'{"inputs": [{"name": "tenure", "datatype": "INT64", "shape": [1], "data": [1]}]}',
            "input 'monthly_charges': is missing",
        ),
    ],
)
def test_bad_requests_are_400s_naming_the_tensor(
    client: TestClient, body: bytes, message: str
) -> None:
    response = client.post(INFER, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"].startswith(message)


def test_predicts_messages_name_the_field(client: TestClient) -> None:
    bad = {**EXAMPLE_CUSTOMER, "contract_type": "weekly"}
    predict = client.post("/predict", json=bad).json()["detail"][0]["msg"]
    response = infer(client, *v2_body([EXAMPLE_CUSTOMER, bad]))
    assert response.status_code == 400
    assert response.json() == {"error": f"input 'contract_type': row 1: {predict}"}
    body, headers = v2_body([EXAMPLE_CUSTOMER], outputs=[RequestedOutput("shap")])
    response = infer(client, body, headers)
    assert response.status_code == 400
    assert response.json()["error"].startswith("output 'shap': is not an output of the model")


def test_binary_sizes_past_the_body_are_400s(client: TestClient) -> None:
    body, headers = v2_body([EXAMPLE_CUSTOMER], binary=True)
    too_long = {**headers, "inference-header-content-length": str(len(body) + 1)}
    response = infer(client, body, too_long)
    assert response.status_code == 400
    assert "Inference-Header-Content-Length" in response.json()["error"]
    response = infer(client, body[:-1], headers)  # the last tensor's byte cut off
    assert response.status_code == 400
    assert response.json()["error"].startswith("input 'senior_citizen': ")


def test_not_ready_is_a_503(app: FastAPI, client: TestClient) -> None:
    predictor, app.state.predictor = app.state.predictor, None
    try:
        response = infer(client, *v2_body([EXAMPLE_CUSTOMER]))
        ready = client.get("/v2/health/ready")
        model_ready = client.get("/v2/models/churn/ready")
    finally:
        app.state.predictor = predictor
    assert response.status_code == 503
    assert response.json() == {"error": "model 'churn' is not ready: it is still loading"}
    assert ready.status_code == 503 and model_ready.status_code == 503
    assert client.get("/v2/health/live").status_code == 200


def test_the_docs_list_the_v2_endpoints(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v2/health/live",
        "/v2/health/ready",
        "/v2",
        "/v2/models/{model_name}",
        "/v2/models/{model_name}/ready",
        "/v2/models/{model_name}/versions/{model_version}",
        "/v2/models/{model_name}/infer",
        "/v2/models/{model_name}/versions/{model_version}/infer",
    ):
        assert path in paths
    body = paths["/v2/models/{model_name}/infer"]["post"]["requestBody"]["content"]
    assert "application/json" in body and "application/octet-stream" in body


def test_model_name_is_a_setting(artifacts_dir: Path) -> None:
    settings = ModelSettings(
        name="attrition", version="v2.3.1", path=artifacts_dir / "v2.3.1" / "model.joblib"
    )
    with TestClient(create_app(settings)) as other:
        assert other.get("/v2/models/attrition").json()["name"] == "attrition"
        response = other.post("/v2/models/attrition/infer", content=v2_body([EXAMPLE_CUSTOMER])[0])
        assert response.json()["model_name"] == "attrition"
        assert other.get("/v2/models/churn").status_code == 404


def test_what_fastapi_refuses_under_v2_is_an_error_object(client: TestClient) -> None:
    response = client.get("/v2/models/churn/explain")
    assert response.status_code == 404 and response.json() == {"error": "Not Found"}
    response = client.post("/v2/health/live")
    assert response.status_code == 405 and response.json() == {"error": "Method Not Allowed"}
    # The model API keeps FastAPI's own form.
    assert client.get("/nowhere").json() == {"detail": "Not Found"}
