"""The gateway in front of fake replicas: tags, passthrough, retries, fallback, errors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.pool import Replica, ReplicaState
from routing_config import load_config
from tests.gateway.fakes import FakeReplicas, settings_for, write_routing

PAYLOAD = {"tenure": 14}


@pytest.fixture
def fakes() -> FakeReplicas:
    return FakeReplicas()


def start(tmp_path: Path, fakes: FakeReplicas, **routing: object) -> TestClient:
    path = write_routing(tmp_path / "routing.yaml", **routing)  # type: ignore[arg-type]
    return TestClient(create_app(settings_for(path), **fakes.transports()))


@pytest.fixture
def client(tmp_path: Path, fakes: FakeReplicas) -> Iterator[TestClient]:
    with start(tmp_path, fakes) as test_client:
        yield test_client


def test_response_is_tagged(client: TestClient, tmp_path: Path) -> None:
    response = client.post("/predict", json=PAYLOAD)
    assert response.status_code == 200
    assert response.headers["X-Model-Version"] == response.json()["model_version"]
    assert response.headers["X-Route-Reason"] == "weighted"
    revision = load_config(tmp_path / "routing.yaml").revision
    assert response.headers["X-Routing-Revision"] == revision
    assert len(response.headers["X-Request-Id"]) == 32
    assert float(response.headers["X-Response-Time-Ms"]) >= 0
    assert response.json()["echo"] == PAYLOAD  # the body went through as sent


def test_request_id_is_kept(client: TestClient, fakes: FakeReplicas) -> None:
    response = client.post("/predict", json=PAYLOAD, headers={"X-Request-Id": "abc-123"})
    assert response.headers["X-Request-Id"] == "abc-123"
    assert fakes.seen_headers[-1]["x-request-id"] == "abc-123"


def test_batch_path_is_forwarded(client: TestClient) -> None:
    response = client.post("/predict/batch", json={"customers": [PAYLOAD]})
    assert response.status_code == 200
    assert response.headers["X-Model-Version"] in {"v2.3.1", "v2.4.0"}


def test_query_string_and_raw_path_are_forwarded(client: TestClient, fakes: FakeReplicas) -> None:
    response = client.post("/predict?explain=full&n=3", json=PAYLOAD)
    assert response.status_code == 200
    assert fakes.seen_targets[-1] == "/predict?explain=full&n=3"
    response = client.post("/predict/%62atch", json={"customers": [PAYLOAD]})
    assert response.status_code == 200
    assert fakes.seen_targets[-1] == "/predict/%62atch"


def test_model_4xx_passes_through_unchanged_and_is_not_retried(
    client: TestClient, fakes: FakeReplicas
) -> None:
    fakes.behaviour = {a: "422" for a in ("10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1")}
    response = client.post("/predict", json=PAYLOAD)
    assert response.status_code == 422
    assert response.json() == {"detail": [{"loc": ["body", "tenure"]}]}
    assert sum(fakes.calls.values()) == 1


def test_hop_by_hop_headers_are_not_forwarded(client: TestClient, fakes: FakeReplicas) -> None:
    response = client.post(
        "/predict",
        json=PAYLOAD,
        headers={
            "Connection": "keep-alive, X-Secret",
            "TE": "trailers",
            "Expect": "100-continue",
            "X-Trace": "t1",
        },
    )
    sent = fakes.seen_headers[-1]
    assert "te" not in sent
    assert "expect" not in sent
    assert sent["x-trace"] == "t1"
    assert "keep-alive" not in response.headers
    assert response.headers["X-Custom"] == "kept"


def test_pinned_request(client: TestClient) -> None:
    for _ in range(20):
        response = client.post("/predict", json=PAYLOAD, headers={"X-Model-Version": "v2.4.0"})
        assert response.headers["X-Model-Version"] == "v2.4.0"
        assert response.headers["X-Route-Reason"] == "pinned"


def test_bad_pin_is_400_naming_allowed_versions(client: TestClient) -> None:
    response = client.post("/predict", json=PAYLOAD, headers={"X-Model-Version": "v9"})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "bad_pin"
    assert "v2.3.1" in body["detail"] and "v2.4.0" in body["detail"]


def test_gateway_errors_are_counted(client: TestClient) -> None:
    for _ in range(3):
        client.post("/predict", json=PAYLOAD, headers={"X-Model-Version": "v9"})
    metrics = client.get("/metrics").text
    # The pin is the client's text, never a label value (tests/gateway/test_metric_labels.py).
    assert 'gateway_requests_total{reason="bad_pin",status="400",version="none"} 3.0' in metrics
    assert 'gateway_request_duration_seconds_count{version="none"} 3.0' in metrics


def test_sticky_key_gets_the_same_version(client: TestClient) -> None:
    for customer in ("c-1", "c-2", "c-3", "c-4"):
        versions = {
            client.post("/predict", json=PAYLOAD, headers={"X-Customer-Id": customer}).headers[
                "X-Model-Version"
            ]
            for _ in range(10)
        }
        assert len(versions) == 1


def test_blue_green_sends_everything_to_live(tmp_path: Path, fakes: FakeReplicas) -> None:
    with start(tmp_path, fakes, mode="blue_green", live="green") as client:
        for _ in range(20):
            response = client.post("/predict", json=PAYLOAD)
            assert response.headers["X-Model-Version"] == "v2.4.0"
            assert response.headers["X-Route-Reason"] == "blue_green"


def test_5xx_is_retried_on_another_replica(tmp_path: Path, fakes: FakeReplicas) -> None:
    fakes.behaviour = {"10.0.0.1:1": "500"}
    with start(tmp_path, fakes, stable_weight=100, canary_weight=0) as client:
        for _ in range(10):
            response = client.post("/predict", json=PAYLOAD)
            assert response.status_code == 200
            assert response.headers["X-Route-Reason"] == "weighted"
    assert fakes.calls["10.0.0.2:1"] == 10


def test_failing_canary_falls_back_to_stable(tmp_path: Path, fakes: FakeReplicas) -> None:
    fakes.behaviour = {"10.0.0.3:1": "500"}
    with start(tmp_path, fakes, stable_weight=0, canary_weight=100) as client:
        response = client.post("/predict", json=PAYLOAD)
        assert response.status_code == 200
        assert response.headers["X-Model-Version"] == "v2.3.1"
        assert response.headers["X-Route-Reason"] == "fallback"
        assert response.headers["X-Fallback-From"] == "v2.4.0"
        metrics = client.get("/metrics").text
        assert (
            'gateway_fallbacks_total{cause="status_5xx",from_version="v2.4.0",to_version="v2.3.1"}'
            in metrics
        )
        assert 'gateway_upstream_errors_total{cause="status_5xx"' in metrics


def test_pinned_request_never_falls_back(tmp_path: Path, fakes: FakeReplicas) -> None:
    fakes.behaviour = {"10.0.0.3:1": "down"}
    with start(tmp_path, fakes) as client:
        response = client.post("/predict", json=PAYLOAD, headers={"X-Model-Version": "v2.4.0"})
        assert response.status_code == 503
        assert response.json()["error"] == "no_healthy_replica"
        assert "v2.4.0" in response.json()["detail"]


def test_503_says_plainly_when_no_replica_is_ready_yet(tmp_path: Path, fakes: FakeReplicas) -> None:
    fakes.behaviour = {"10.0.0.3:1": "down"}  # not listening yet: it has never been healthy
    with start(tmp_path, fakes) as client:
        response = client.post("/predict", json=PAYLOAD, headers={"X-Model-Version": "v2.4.0"})
        assert response.status_code == 503
        detail = response.json()["detail"]
        assert detail == "pinned version v2.4.0 has no ready replica yet (1 starting)"


def canary_replica(client: TestClient) -> Replica:
    (replica,) = client.app.state.gateway.snapshot.pool.by_version["v2.4.0"]  # type: ignore[attr-defined]
    return replica


@pytest.mark.parametrize(
    ("make_unavailable", "reason"),
    [
        (
            lambda r, pool: pool.record_check(r, ok=False, reported_version=None, error="x"),
            "unhealthy",
        ),
        (lambda r, pool: setattr(r, "state", ReplicaState.EJECTED), "ejected"),
        (
            lambda r, pool: setattr(r, "inflight", pool.limits.max_inflight_per_replica),
            "at the in-flight cap",
        ),
        (
            lambda r, pool: pool.record_check(r, ok=True, reported_version="v9", error=None),
            "version_mismatch",
        ),
    ],
    ids=["unhealthy", "ejected", "at-cap", "mismatch"],
)
def test_503_names_why_a_version_that_was_up_cannot_serve(
    tmp_path: Path, fakes: FakeReplicas, make_unavailable: Callable[..., None], reason: str
) -> None:
    with start(tmp_path, fakes) as client:
        replica = canary_replica(client)
        assert replica.state is ReplicaState.HEALTHY  # it has been up
        make_unavailable(replica, client.app.state.gateway.snapshot.pool)  # type: ignore[attr-defined]
        response = client.post("/predict", json=PAYLOAD, headers={"X-Model-Version": "v2.4.0"})
        assert response.status_code == 503
        assert response.json()["detail"] == (
            f"pinned version v2.4.0 has no healthy replica with room for a request (1 {reason})"
        )
        replica.inflight = 0


def test_version_mismatch_is_never_routed_to(tmp_path: Path, fakes: FakeReplicas) -> None:
    fakes.reported = {"10.0.0.3:1": "v2.3.1"}  # the canary box serves the wrong artifact
    with start(tmp_path, fakes, stable_weight=0, canary_weight=100) as client:
        response = client.post("/predict", json=PAYLOAD)
        assert response.headers["X-Route-Reason"] == "fallback"
        assert fakes.calls["10.0.0.3:1"] == 0
        states = {r["url"]: r["state"] for r in client.get("/routing").json()["replicas"]}
        assert states["http://canary-a:8000"] == "version_mismatch"


def test_nothing_can_serve_is_503_json(tmp_path: Path, fakes: FakeReplicas) -> None:
    fakes.behaviour = {a: "down" for a in ("10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1")}
    with start(tmp_path, fakes) as client:
        response = client.post("/predict", json=PAYLOAD)
        assert response.status_code == 503
        assert response.json()["error"] == "no_healthy_replica"
        assert client.get("/ready").status_code == 503


def test_timeout_is_504(tmp_path: Path, fakes: FakeReplicas) -> None:
    fakes.behaviour = {"10.0.0.1:1": "slow", "10.0.0.2:1": "slow"}
    with start(tmp_path, fakes, stable_weight=100, canary_weight=0) as client:
        response = client.post("/predict", json=PAYLOAD)
        assert response.status_code == 504
        assert response.json()["error"] == "upstream_timeout"


def test_body_too_large_is_413(client: TestClient) -> None:
    response = client.post("/predict", content=b"x" * (1024 * 1024 + 1))
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"


def test_get_on_predict_is_405(client: TestClient) -> None:
    response = client.get("/predict")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_status_endpoints(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "healthy"}
    assert client.get("/ready").status_code == 200
    routing = client.get("/routing").json()
    assert routing["weights"] == {"v2.3.1": 90, "v2.4.0": 10}
    assert {r["address"] for r in routing["replicas"]} == {
        "http://10.0.0.1:1",
        "http://10.0.0.2:1",
        "http://10.0.0.3:1",
    }
    assert routing["shadow"]["active"] is False
    assert client.get("/nope").json()["error"] == "not_found"


def test_client_gone_before_body_gets_no_answer_and_forwards_nothing(
    client: TestClient, fakes: FakeReplicas
) -> None:
    proxy = client.app.proxy  # type: ignore[attr-defined]
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": []}
    asyncio.run(proxy(scope, receive, send))
    assert sent == []
    assert sum(fakes.calls.values()) == 0


def test_a_request_shed_at_the_in_flight_cap_is_a_503_with_retry_after(
    tmp_path: Path, fakes: FakeReplicas
) -> None:
    with start(tmp_path, fakes) as client:
        replica = canary_replica(client)
        replica.inflight = client.app.state.gateway.snapshot.pool.limits.max_inflight_per_replica  # type: ignore[attr-defined]
        response = client.post("/predict", json=PAYLOAD, headers={"X-Model-Version": "v2.4.0"})
        replica.inflight = 0
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert fakes.calls["10.0.0.3:1"] == 0  # shed after its wait for room, never tried
        metrics = client.get("/metrics").text
        assert 'gateway_shed_requests_total{version="v2.4.0"} 1.0' in metrics


def test_a_503_for_a_version_not_at_its_cap_is_not_counted_as_shed(
    tmp_path: Path, fakes: FakeReplicas
) -> None:
    fakes.behaviour = {a: "down" for a in ("10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1")}
    with start(tmp_path, fakes) as client:
        response = client.post("/predict", json=PAYLOAD)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert "gateway_shed_requests_total{" not in client.get("/metrics").text
