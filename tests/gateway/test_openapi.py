"""The gateway's OpenAPI document lists the two endpoints it forwards, and what it adds to them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.openapi import EXAMPLE_CUSTOMER
from tests.gateway.fakes import settings_for, write_routing

ROOT = Path(__file__).resolve().parents[2]
HEADERS = {
    "X-Model-Version",
    "X-Route-Reason",
    "X-Routing-Revision",
    "X-Fallback-From",
    "X-Request-Id",
    "X-Response-Time-Ms",
}


@pytest.fixture
def document(tmp_path: Path) -> dict[str, Any]:
    app = create_app(settings_for(write_routing(tmp_path / "routing.yaml")))
    return TestClient(app).get("/openapi.json").json()


@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
def test_forwarded_endpoints_are_listed(document: dict[str, Any], path: str) -> None:
    operation = document["paths"][path]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["type"] == "object"
    ok = operation["responses"]["200"]
    assert set(ok["headers"]) == HEADERS
    assert "application/json" in ok["content"]
    error_ref = {"$ref": "#/components/schemas/GatewayError"}
    for status in ("400", "413", "502", "503", "504"):
        answer = operation["responses"][status]
        assert answer["content"]["application/json"]["schema"] == error_ref, status
        assert answer["description"], status
    assert "422" in operation["responses"]  # the model's, passed through


def test_gateway_error_schema_is_error_and_detail(document: dict[str, Any]) -> None:
    schema = document["components"]["schemas"]["GatewayError"]
    assert schema["required"] == ["error", "detail"]
    assert set(schema["properties"]) >= {"error", "detail"}


def test_status_endpoints_are_still_listed_after_the_predictions(document: dict[str, Any]) -> None:
    paths = list(document["paths"])
    assert paths[:2] == ["/predict", "/predict/batch"]
    assert {"/health", "/ready", "/routing", "/metrics"} <= set(paths)


def test_examples_match_the_model_schemas(document: dict[str, Any]) -> None:
    """The gateway may not import model_server; its tests check the examples against it."""
    from model_server.schemas import (
        BatchPredictionRequest,
        BatchPredictionResponse,
        ChurnPredictionRequest,
        ChurnPredictionResponse,
    )

    def examples(path: str) -> tuple[Any, Any]:
        post = document["paths"][path]["post"]
        body = post["requestBody"]["content"]["application/json"]["example"]
        return body, post["responses"]["200"]["content"]["application/json"]["example"]

    for path, request, response in [
        ("/predict", ChurnPredictionRequest, ChurnPredictionResponse),
        ("/predict/batch", BatchPredictionRequest, BatchPredictionResponse),
    ]:
        body, answer = examples(path)
        request.model_validate(body, strict=True)
        response.model_validate(answer, strict=True)
    assert json.loads((ROOT / "examples" / "customer.json").read_text()) == EXAMPLE_CUSTOMER
