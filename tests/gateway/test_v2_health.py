"""Health checks per protocol, replicas' V2 metadata, and the one input contract per model."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.health import HealthChecker
from gateway.pool import ReplicaState
from tests.gateway.fakes import settings_for
from tests.gateway.v2_fakes import (
    CHURN_INPUTS,
    V2_ROUTING,
    FakeV2Replicas,
    metadata_doc,
    our_replicas_metadata,
)
from tests.gateway.v2_infer_fakes import CUSTOMER, V2InferReplicas

CANARY = "10.0.0.3:1"
PAYLOAD = CUSTOMER  # a whole customer: /predict to the V2-only canary is translated


def start(
    tmp_path: Path, fakes: FakeV2Replicas, stable_weight: int = 0, canary_weight: int = 100
) -> TestClient:
    path = tmp_path / "routing.yaml"
    path.write_text(V2_ROUTING.format(stable_weight=stable_weight, canary_weight=canary_weight))
    return TestClient(create_app(settings_for(path), **fakes.transports()))


def fakes_with(canary: dict[str, object] | None) -> FakeV2Replicas:
    metadata = our_replicas_metadata()
    if canary is None:
        del metadata[CANARY]
    else:
        metadata[CANARY] = canary
    return V2InferReplicas(metadata=metadata, sklearn={CANARY})


def replicas(client: TestClient) -> dict[str, dict[str, object]]:
    return {r["url"]: r for r in client.get("/routing").json()["replicas"]}


def sk_metadata(**overrides: object) -> dict[str, object]:
    return metadata_doc(
        "churn-sk",
        ["v2.4.0"],
        platform="sklearn",
        outputs=(("predict_proba", "FP64"),),
        **overrides,  # type: ignore[arg-type]
    )


def test_a_v2_replica_is_checked_with_v2_readiness_and_metadata(tmp_path: Path) -> None:
    fakes = fakes_with(sk_metadata())
    with start(tmp_path, fakes) as client:
        canary = replicas(client)["http://canary-a:8000"]
        assert canary["state"] == "healthy"
        assert canary["reported_version"] == "v2.4.0"
        # Its own name on its replicas, never /health (which a V2 server does not have).
        assert "/v2/models/churn-sk/ready" in fakes.v2_paths
        assert "/v2/models/churn-sk" in fakes.v2_paths
        assert CANARY not in fakes.calls
        response = client.post("/predict", json=PAYLOAD)
        assert response.headers["X-Model-Version"] == "v2.4.0"


def test_a_v2_replica_serving_another_version_is_ejected(tmp_path: Path) -> None:
    fakes = fakes_with(metadata_doc("churn-sk", ["v2.3.1", "v9"]))
    with start(tmp_path, fakes) as client:
        canary = replicas(client)["http://canary-a:8000"]
        assert canary["state"] == "version_mismatch"
        assert canary["last_error"] == "serves v2.3.1, v9, routing.yaml pins it to v2.4.0"
        response = client.post("/predict", json=PAYLOAD)
        assert response.headers["X-Route-Reason"] == "fallback"


def test_a_v2_replica_not_ready_or_without_metadata_is_unhealthy(tmp_path: Path) -> None:
    fakes = fakes_with(sk_metadata())
    fakes.not_ready = {CANARY}
    with start(tmp_path, fakes) as client:
        canary = replicas(client)["http://canary-a:8000"]
        assert canary["state"] == "unhealthy"
        assert canary["last_error"] == "/v2/models/churn-sk/ready answered 503"
    fakes = fakes_with({"name": "churn-sk", "versions": "v2.4.0"})  # not a list
    with start(tmp_path, fakes) as client:
        canary = replicas(client)["http://canary-a:8000"]
        assert canary["state"] == "unhealthy"
        assert canary["last_error"] == (
            "/v2/models/churn-sk: versions: not a list of at most 256 strings"
        )


def test_an_oversized_metadata_answer_is_not_read(tmp_path: Path) -> None:
    huge = sk_metadata()
    huge["platform"] = "x" * 300_000
    fakes = fakes_with(huge)
    with start(tmp_path, fakes) as client:
        canary = replicas(client)["http://canary-a:8000"]
        assert canary["state"] == "unhealthy"
        assert canary["last_error"] == "/v2/models/churn-sk answered more than 262144 bytes"


def test_a_version_whose_inputs_differ_gets_no_traffic_and_says_why(tmp_path: Path) -> None:
    inputs = tuple(
        (n, "FP64" if n == "tenure" else t) for n, t in CHURN_INPUTS if n != "senior_citizen"
    )
    fakes = fakes_with(sk_metadata(inputs=(*inputs, ("gender", "BYTES"))))
    reason = (
        "input contract differs from v2.3.1: tenure is FP64, not INT64; senior_citizen missing; "
        "gender not an input of v2.3.1"
    )
    with start(tmp_path, fakes) as client:
        canary = replicas(client)["http://canary-a:8000"]
        assert canary["state"] == ReplicaState.CONTRACT_MISMATCH.value
        assert canary["healthy"] is False
        assert canary["last_error"] == reason
        contract = client.get("/routing").json()["input_contract"]
        assert contract["reference"]["version"] == "v2.3.1"
        assert {"name": "tenure", "datatype": "INT64"} in contract["reference"]["inputs"]
        assert contract["versions"] == {
            "v2.3.1": {"status": "agrees"},
            "v2.4.0": {"status": "differs", "reason": reason},
        }
        # Weighted 100% to it: stable serves instead.
        response = client.post("/predict", json=PAYLOAD)
        assert response.headers["X-Route-Reason"] == "fallback"
        assert response.headers["X-Model-Version"] == "v2.3.1"
        assert fakes.calls[CANARY] == 0
        # A pin gets a 503 that says why.
        response = client.post("/predict", json=PAYLOAD, headers={"X-Model-Version": "v2.4.0"})
        assert response.status_code == 503
        assert response.json()["detail"] == (
            "pinned version v2.4.0 has no healthy replica with room for a request "
            f"(1 contract_mismatch): {reason}"
        )
        ready = client.get("/v2/models/churn/versions/v2.4.0/ready")
        assert ready.status_code == 503
        assert ready.json() == {
            "error": f"version v2.4.0 of model 'churn' is not ready: 1 contract_mismatch: {reason}"
        }


def test_shapes_and_order_do_not_break_the_contract(tmp_path: Path) -> None:
    doc = sk_metadata(inputs=tuple(reversed(CHURN_INPUTS)))
    for tensor in doc["inputs"]:  # type: ignore[attr-defined]
        tensor["shape"] = [-1, 1]  # MLServer's pandas codec
    with start(tmp_path, fakes_with(doc)) as client:
        assert replicas(client)["http://canary-a:8000"]["state"] == "healthy"
        versions = client.get("/routing").json()["input_contract"]["versions"]
        assert versions["v2.4.0"] == {"status": "agrees"}


def test_model_api_replicas_without_the_v2_door_are_healthy_and_not_judged(
    tmp_path: Path,
) -> None:
    fakes = FakeV2Replicas(metadata={CANARY: sk_metadata(inputs=(("x", "FP32"),))})
    with start(tmp_path, fakes) as client:
        states = {url: r["state"] for url, r in replicas(client).items()}
        # No stable metadata: no contract to hold the canary to (yet).
        assert states == dict.fromkeys(states, "healthy")
        contract = client.get("/routing").json()["input_contract"]
        assert contract["reference"] is None
        assert contract["versions"]["v2.3.1"] == {"status": "unknown"}


def test_a_model_api_replicas_metadata_is_read_again_only_when_it_may_have_changed(
    tmp_path: Path,
) -> None:
    fakes = fakes_with(sk_metadata())

    def asked(address: str) -> int:
        return fakes.metadata_asks[address]

    with start(tmp_path, fakes) as client:
        first = asked("10.0.0.1:1")
        assert first >= 1
        canary_before = asked(CANARY)
        checker_round(client, fakes)
        checker_round(client, fakes)
        # Healthy, same version: its artifact, hence its metadata, is the one already read.
        assert asked("10.0.0.1:1") == first
        # A V2 server's metadata is its version check: read every round.
        assert asked(CANARY) == canary_before + 2
        fakes.reported["10.0.0.1:1"] = "v9.9.9"
        checker_round(client, fakes)
        assert asked("10.0.0.1:1") == first + 1
        assert replicas(client)["http://stable-a:8000"]["state"] == "version_mismatch"
        del fakes.reported["10.0.0.1:1"]
        checker_round(client, fakes)  # not healthy before this round: read again
        assert asked("10.0.0.1:1") == first + 2
        assert replicas(client)["http://stable-a:8000"]["state"] == "healthy"


def test_the_contract_is_remembered_while_stable_is_down(tmp_path: Path) -> None:
    fakes = fakes_with(sk_metadata(inputs=(("x", "FP32"),)))
    with start(tmp_path, fakes) as client:
        assert replicas(client)["http://canary-a:8000"]["state"] == "contract_mismatch"
        fakes.behaviour = {"10.0.0.1:1": "down", "10.0.0.2:1": "down"}
        checker_round(client, fakes)
        states = {url: r["state"] for url, r in replicas(client).items()}
        assert states["http://stable-a:8000"] == "unhealthy"
        assert states["http://canary-a:8000"] == "contract_mismatch"
        # Fixed on the replica: back in the next round.
        fakes.metadata[CANARY] = sk_metadata()
        checker_round(client, fakes)
        assert replicas(client)["http://canary-a:8000"]["state"] == "healthy"


def checker_round(client: TestClient, fakes: FakeV2Replicas) -> None:
    """One health round now, on the app's loop, over the app's state."""
    state = client.app.state.gateway  # type: ignore[attr-defined]

    async def once() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(fakes.health)) as http:
            await HealthChecker(lambda: state, http, 1.0).check_all()

    assert client.portal is not None
    client.portal.call(once)
