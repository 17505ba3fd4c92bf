"""The chapter's API tests, plus the edges a production model server must hold."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from model_server.app import create_app
from model_server.artifact import ArtifactError
from model_server.schemas import EXAMPLE_CUSTOMER
from model_server.settings import ModelSettings

VALID = dict(EXAMPLE_CUSTOMER)


def settings_for(artifacts: Path, version: str) -> ModelSettings:
    return ModelSettings(version=version, path=artifacts / version / "model.joblib")


@pytest.fixture(scope="module")
def client(artifacts_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(artifacts_dir, "v2.3.1"))) as test_client:
        yield test_client


def customers(n: int) -> list[dict]:
    """n distinct valid customers covering every category."""
    contracts = ["month-to-month", "one-year", "two-year"]
    payments = ["electronic_check", "mailed_check", "bank_transfer", "credit_card"]
    internets = ["none", "dsl", "fiber_optic"]
    return [
        {
            "tenure": i % 121,
            "monthly_charges": 20.0 + (i * 7.3) % 100,
            "total_charges": float((i * 131) % 7000),
            "contract_type": contracts[i % 3],
            "payment_method": payments[(i // 3) % 4],
            "num_support_tickets": i % 9,
            "internet_service": internets[(i // 5) % 3],
            "streaming_services": i % 5,
            "paperless_billing": i % 2 == 0,
            "senior_citizen": i % 7 == 0,
        }
        for i in range(n)
    ]


def test_health_check(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy", "model_version": "v2.3.1"}


def test_ready_once_loaded(client: TestClient) -> None:
    assert client.get("/ready").status_code == 200


def test_ready_is_503_before_model_loads(artifacts_dir: Path) -> None:
    # Without entering the lifespan the model is never loaded.
    app = create_app(settings_for(artifacts_dir, "v2.3.1"))
    response = TestClient(app).get("/ready")
    assert response.status_code == 503
    assert response.json()["error"] == "not_ready"


def test_predict_valid_request(client: TestClient) -> None:
    response = client.post("/predict", json=VALID)
    assert response.status_code == 200
    data = response.json()
    assert 0 <= data["churn_probability"] <= 1
    assert data["risk_tier"] in ("low", "medium", "high")
    assert len(data["top_reasons"]) == 3
    assert data["model_version"] == "v2.3.1"
    assert response.headers["X-Model-Version"] == "v2.3.1"
    assert float(response.headers["X-Response-Time-Ms"]) >= 0


def test_reasons_sorted_by_absolute_contribution(client: TestClient) -> None:
    reasons = client.post("/predict", json=VALID).json()["top_reasons"]
    magnitudes = [abs(r["shap_contribution"]) for r in reasons]
    assert magnitudes == sorted(magnitudes, reverse=True)
    for reason in reasons:
        expected = "increases_risk" if reason["shap_contribution"] > 0 else "decreases_risk"
        assert reason["direction"] == expected


def test_risk_tier_matches_probability(client: TestClient) -> None:
    for row in customers(60):
        data = client.post("/predict", json=row).json()
        p = data["churn_probability"]
        expected = "low" if p < 0.3 else "medium" if p < 0.6 else "high"
        assert data["risk_tier"] == expected


def test_predict_missing_field(client: TestClient) -> None:
    response = client.post("/predict", json={"tenure": 14})
    assert response.status_code == 422
    missing = {tuple(e["loc"]) for e in response.json()["detail"]}
    assert ("body", "contract_type") in missing


def test_predict_invalid_type(client: TestClient) -> None:
    response = client.post("/predict", json={**VALID, "tenure": "not_a_number"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "tenure"]


def test_predict_out_of_range(client: TestClient) -> None:
    response = client.post("/predict", json={**VALID, "tenure": -5})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "tenure"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("field", ["tenure", "monthly_charges"])
@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
def test_non_finite_number_is_a_422_naming_the_field(
    client: TestClient, path: str, field: str, literal: str
) -> None:
    # Python's JSON parser takes these literals; the answer must still be a clean 422.
    row = json.dumps({**VALID, field: 0}).replace(f'"{field}": 0', f'"{field}": {literal}')
    body = row if path == "/predict" else f'{{"customers": [{row}]}}'
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"][-1] == field


@pytest.mark.parametrize("field", ["contract_type", "payment_method", "internet_service"])
def test_unknown_category_names_field_and_allowed_values(client: TestClient, field: str) -> None:
    response = client.post("/predict", json={**VALID, field: "carrier_pigeon"})
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", field]
    assert "carrier_pigeon" in error["msg"]
    assert "allowed" in error["msg"]


def test_malformed_json_is_a_client_error(client: TestClient) -> None:
    response = client.post(
        "/predict", content=b'{"tenure": 14,', headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert "detail" in response.json()


@pytest.mark.parametrize("size", [1, 1000])
def test_batch_equals_single_predictions(client: TestClient, size: int) -> None:
    rows = customers(size)
    response = client.post("/predict/batch", json={"customers": rows})
    assert response.status_code == 200
    data = response.json()
    assert data["batch_size"] == size
    assert data["processing_time_ms"] > 0
    # Compare a sample of rows (every row for the batch of 1) to the single endpoint.
    for i in range(0, size, max(1, size // 40)):
        single = client.post("/predict", json=rows[i]).json()
        assert data["predictions"][i] == single


@pytest.mark.parametrize("size", [0, 1001])
def test_batch_size_limits(client: TestClient, size: int) -> None:
    response = client.post("/predict/batch", json={"customers": customers(size)})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "customers"]


def test_metadata(client: TestClient, artifacts_dir: Path) -> None:
    data = client.get("/metadata").json()
    assert data["version"] == "v2.3.1"
    assert len(data["sha256"]) == 64
    assert data["training_data"]["rows"] == 20_000
    assert 0.5 < data["metrics"]["holdout_auc"] <= 1


def test_docs_show_schemas_with_examples(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    request_schema = schema["components"]["schemas"]["ChurnPredictionRequest"]
    assert request_schema["properties"]["tenure"]["examples"] == [14]
    assert "ChurnPredictionResponse" in schema["components"]["schemas"]


def test_two_versions_predict_differently(artifacts_dir: Path) -> None:
    rows = customers(200)
    results = {}
    for version in ("v2.3.1", "v2.4.0"):
        with TestClient(create_app(settings_for(artifacts_dir, version))) as c:
            body = c.post("/predict/batch", json={"customers": rows}).json()
            assert {p["model_version"] for p in body["predictions"]} == {version}
            results[version] = [p["churn_probability"] for p in body["predictions"]]
    gaps = [abs(a - b) for a, b in zip(results["v2.3.1"], results["v2.4.0"], strict=True)]
    assert sum(gaps) / len(gaps) > 0.005


def test_tampered_artifact_refused(artifacts_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(artifacts_dir / "v2.3.1", tmp_path / "v2.3.1")
    model_file = tmp_path / "v2.3.1" / "model.joblib"
    model_file.write_bytes(model_file.read_bytes() + b"tampered")
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        create_app(settings_for(tmp_path, "v2.3.1"))


def test_version_mismatch_refused(artifacts_dir: Path) -> None:
    settings = ModelSettings(version="v2.4.0", path=artifacts_dir / "v2.3.1" / "model.joblib")
    with pytest.raises(ArtifactError, match="version mismatch"):
        create_app(settings)


def test_missing_artifact_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not found"):
        create_app(ModelSettings(version="v2.3.1", path=tmp_path / "nope.joblib"))


def test_metrics_count_predictions(client: TestClient) -> None:
    client.post("/predict", json=VALID)
    client.post("/predict/batch", json={"customers": customers(7)})
    text = client.get("/metrics").text
    assert 'model_info{version="v2.3.1"} 1.0' in text
    assert "model_batch_size_bucket" in text
    single = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('model_predictions_total{endpoint="single"')
    ]
    assert sum(single) >= 1
    assert 'model_request_duration_seconds_count{endpoint="batch"}' in text


def test_shipped_example_is_the_chapters_payload() -> None:
    shipped = Path(__file__).resolve().parents[2] / "examples" / "customer.json"
    assert json.loads(shipped.read_text()) == VALID


def test_shadow_copies_are_counted_apart(client: TestClient) -> None:
    def counted(shadow: str) -> float:
        text = client.get("/metrics").text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith('model_predictions_total{endpoint="batch"')
            and f'shadow="{shadow}"' in line
        )

    before_shadow, before_client = counted("true"), counted("false")
    batch = {"customers": customers(3)}
    client.post("/predict/batch", json=batch, headers={"X-Shadow-Of": "req-1"})
    assert counted("true") == before_shadow + 3
    assert counted("false") == before_client
    client.post("/predict/batch", json=batch)
    assert counted("false") == before_client + 3
