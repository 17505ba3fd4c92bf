"""The gateway's OpenAPI document lists every Open Inference Protocol endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.openapi_v2 import EXAMPLE_REQUEST
from protocols.v2.codec import decode_request
from tests.gateway.fakes import settings_for, write_routing

V2_GETS = [
    "/v2/health/live",
    "/v2/health/ready",
    "/v2",
    "/v2/models/{model}",
    "/v2/models/{model}/versions/{version}",
    "/v2/models/{model}/ready",
    "/v2/models/{model}/versions/{version}/ready",
]
INFERS = ["/v2/models/{model}/infer", "/v2/models/{model}/versions/{version}/infer"]


@pytest.fixture
def document(tmp_path: Path) -> dict[str, Any]:
    app = create_app(settings_for(write_routing(tmp_path / "routing.yaml")))
    return TestClient(app).get("/openapi.json").json()


def test_every_v2_endpoint_is_listed(document: dict[str, Any]) -> None:
    for path in V2_GETS:
        assert "get" in document["paths"][path], path
    for path in INFERS:
        assert "post" in document["paths"][path], path
    # The model API's doors stay first.
    assert list(document["paths"])[:2] == ["/predict", "/predict/batch"]


@pytest.mark.parametrize("path", INFERS)
def test_infer_is_described_per_the_protocol_with_the_binary_extension(
    document: dict[str, Any], path: str
) -> None:
    operation = document["paths"][path]["post"]
    content = operation["requestBody"]["content"]
    assert content["application/json"]["schema"] == {
        "$ref": "#/components/schemas/V2InferenceRequest"
    }
    assert content["application/octet-stream"]["schema"]["format"] == "binary"
    assert "Inference-Header-Content-Length" in operation["description"]
    names = {p["name"] for p in operation["parameters"]}
    assert names >= {"model", "Inference-Header-Content-Length"}
    assert ("version" in names) == ("versions" in path)
    ok = operation["responses"]["200"]
    assert set(ok["content"]) == {"application/json", "application/octet-stream"}
    assert "X-Model-Version" in ok["headers"]
    for status in ("400", "404", "413", "502", "503", "504"):
        schema = operation["responses"][status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/V2Error"}
    schemas = document["components"]["schemas"]
    assert schemas["V2InferenceRequest"]["required"] == ["inputs"]
    assert "BYTES" in schemas["V2RequestInput"]["properties"]["datatype"]["enum"]
    assert schemas["V2InferenceResponse"]["required"] == ["model_name", "outputs"]


def test_the_infer_example_is_a_valid_request_of_the_model_contract() -> None:
    request = decode_request(orjson.dumps(EXAMPLE_REQUEST), None, max_elements=100)
    assert request.id == "customer-42"
    assert len(request.inputs) == 10


def test_v2_paths_take_the_served_model_and_stable_as_examples(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        if path.startswith("/v2/models/"):
            for operation in item.values():
                said = {p["name"]: p.get("example") for p in operation["parameters"]}
                assert said["model"] == "churn", path
                assert said.get("version", "v2.3.1") == "v2.3.1", path


def test_metadata_answers_are_documented(document: dict[str, Any]) -> None:
    operation = document["paths"]["/v2/models/{model}"]["get"]
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(schema["required"]) == {"name", "versions", "platform", "inputs", "outputs"}
    assert set(operation["responses"]) >= {"200", "404", "503"}
