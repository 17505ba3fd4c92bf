"""The gateway's Open Inference Protocol health and metadata endpoints."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from gateway.app import create_app
from tests.gateway.fakes import settings_for, write_routing
from tests.gateway.v2_fakes import (
    CHURN_INPUTS,
    V2_ROUTING,
    FakeV2Replicas,
    metadata_doc,
    our_replicas_metadata,
)

STABLE = ("10.0.0.1:1", "10.0.0.2:1")
CANARY = "10.0.0.3:1"


def start(tmp_path: Path, fakes: FakeV2Replicas) -> TestClient:
    path = write_routing(tmp_path / "routing.yaml")
    return TestClient(create_app(settings_for(path), **fakes.transports()))


def test_health_and_server_metadata(tmp_path: Path) -> None:
    fakes = FakeV2Replicas(metadata=our_replicas_metadata())
    with start(tmp_path, fakes) as client:
        assert client.get("/v2/health/live").json() == {"live": True}
        ready = client.get("/v2/health/ready")
        assert (ready.status_code, ready.json()) == (200, {"ready": True})
        server = client.get("/v2").json()
        assert server["name"] == "streamflow-gateway"
        assert server["extensions"] == ["binary_tensor_data"]
        assert server["version"]


def test_not_ready_when_no_replica_of_the_live_route_is_healthy(tmp_path: Path) -> None:
    fakes = FakeV2Replicas(
        metadata=our_replicas_metadata(), behaviour=dict.fromkeys((*STABLE, CANARY), "down")
    )
    with start(tmp_path, fakes) as client:
        assert client.get("/v2/health/live").status_code == 200
        for path in ("/v2/health/ready", "/v2/models/churn/ready"):
            response = client.get(path)
            assert response.status_code == 503
            assert set(response.json()) == {"error"}
        response = client.get("/v2/models/churn/versions/v2.4.0/ready")
        assert response.json() == {
            "error": "version v2.4.0 of model 'churn' is not ready: 1 starting"
        }


def test_model_metadata_lists_routing_versions_and_the_replicas_tensors(tmp_path: Path) -> None:
    fakes = FakeV2Replicas(metadata=our_replicas_metadata())
    with start(tmp_path, fakes) as client:
        response = client.get("/v2/models/churn")
        assert response.status_code == 200
        body = response.json()
        assert body["name"] == "churn"
        assert body["versions"] == ["v2.3.1", "v2.4.0"]
        assert body["platform"] == "streamflow"
        assert [(t["name"], t["datatype"]) for t in body["inputs"]] == list(CHURN_INPUTS)
        assert [t["name"] for t in body["outputs"]] == [
            "churn_probability",
            "risk_tier",
            "top_reasons",
        ]
        one = client.get("/v2/models/churn/versions/v2.4.0").json()
        assert one["versions"] == ["v2.4.0"]
        assert client.get("/v2/models/churn/ready").json() == {"name": "churn", "ready": True}
        assert client.get("/v2/models/churn/versions/v2.3.1/ready").json() == {
            "name": "churn",
            "ready": True,
        }


def test_a_versions_metadata_is_its_own_replicas(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(V2_ROUTING.format(stable_weight=100, canary_weight=0))
    metadata = our_replicas_metadata()
    metadata[CANARY] = metadata_doc(
        "churn-sk", ["v2.4.0"], platform="sklearn", outputs=(("predict_proba", "FP64"),)
    )
    fakes = FakeV2Replicas(metadata=metadata)
    with TestClient(create_app(settings_for(path), **fakes.transports())) as client:
        body = client.get("/v2/models/churn/versions/v2.4.0").json()
        # Named by the gateway's model, whatever the server calls it.
        assert (body["name"], body["versions"], body["platform"]) == (
            "churn",
            ["v2.4.0"],
            "sklearn",
        )
        # Its own output, after the contract's it answers through the gateway (no reasons).
        assert body["outputs"] == [
            {"name": "churn_probability", "datatype": "FP64", "shape": [-1]},
            {"name": "risk_tier", "datatype": "BYTES", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1]},
        ]
        assert client.get("/v2/models/churn").json()["platform"] == "streamflow"  # stable's


def test_unknown_model_or_version_is_a_404_naming_the_known_ones(tmp_path: Path) -> None:
    fakes = FakeV2Replicas(metadata=our_replicas_metadata())
    with start(tmp_path, fakes) as client:
        for path in ("/v2/models/iris", "/v2/models/iris/ready", "/v2/models/iris/versions/v2.3.1"):
            response = client.get(path)
            assert response.status_code == 404
            assert response.json() == {"error": "unknown model 'iris'; this gateway serves 'churn'"}
        for path in ("/v2/models/churn/versions/v9", "/v2/models/churn/versions/v9/ready"):
            response = client.get(path)
            assert response.status_code == 404
            assert response.json() == {
                "error": "unknown version 'v9' of model 'churn'; known versions: v2.3.1, v2.4.0"
            }
        long = "x" * 5000
        response = client.get(f"/v2/models/{long}")
        assert len(response.content) < 200  # the name is not echoed whole


def test_metadata_unknown_yet_is_a_503(tmp_path: Path) -> None:
    fakes = FakeV2Replicas()  # model servers without the V2 door
    with start(tmp_path, fakes) as client:
        response = client.get("/v2/models/churn")
        assert response.status_code == 503
        assert response.json() == {
            "error": "metadata of model 'churn' not known yet: no replica of any version has "
            "answered its V2 metadata"
        }


def test_v2_paths_answer_on_the_client_port(tmp_path: Path) -> None:
    fakes = FakeV2Replicas(metadata=our_replicas_metadata())
    path = write_routing(tmp_path / "routing.yaml")
    app = create_app(settings_for(path, admin_port=9999), **fakes.transports())
    with TestClient(app) as client:
        assert client.get("/v2/models/churn").status_code == 200
        assert client.get("/routing").status_code == 404
