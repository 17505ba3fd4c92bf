"""The probabilities a V2 server's answers served, counted per version and bin by the gateway
(gateway_served_probability_rows_total): the prediction histogram the rollout judge's drift
checks read for a version whose replicas export none. Only the client's answers count; our
replicas' answers are never read for it."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import GatewayMetrics, ServedProbabilities
from tests.gateway.test_v2_door import (
    CANARY,
    INFER,
    ours,
    sklearn_routing,
    start,
    with_sklearn_canary,
)
from tests.gateway.v2_infer_fakes import CUSTOMER, probability, v2_request
from vocabulary.buckets import PROBABILITY_BIN_LABELS

SERVED = "gateway_served_probability_rows_total"


def served(client: TestClient) -> dict[str, list[float]]:
    """Rows per version, bin by bin, as /metrics says."""
    out: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == SERVED:
                bins = out.setdefault(sample.labels["version"], [0.0] * len(PROBABILITY_BIN_LABELS))
                bins[PROBABILITY_BIN_LABELS.index(sample.labels["bin"])] += sample.value
    return out


def bins_of(*probabilities: float) -> list[float]:
    """The bins the probabilities fall in (le: a bound is inclusive), counted by hand."""
    out = [0.0] * len(PROBABILITY_BIN_LABELS)
    for p in probabilities:
        i = 0
        while p > (i + 1) / 10 + 1e-12 and i < 9:
            i += 1
        out[i] += 1
    return out


def test_bins_take_the_shared_bounds_inclusively() -> None:
    edges = [0.0, 0.1, 0.1000001, 0.3, 0.6, 0.95, 1.0]
    tally = ServedProbabilities()
    tally.record("v2.4.0", edges)  # a small answer: bin by bin
    tally.record("v2.4.0", np.array([], dtype=np.float64))  # an empty answer adds nothing
    assert tally.rows["v2.4.0"] == [2, 1, 1, 0, 0, 1, 0, 0, 0, 2]
    # A large answer, binned at once, bins alike.
    tally.record("v2.5.0", np.array(edges * 100))
    assert tally.rows["v2.5.0"] == [200, 100, 100, 0, 0, 100, 0, 0, 0, 200]
    metrics = GatewayMetrics(CollectorRegistry())
    assert metrics.served in metrics.counted()  # summed over workers, as the other counts


def test_every_answer_a_client_got_from_a_v2_server_is_counted(tmp_path: Path) -> None:
    fakes = with_sklearn_canary()
    with start(tmp_path, fakes, sklearn_routing()) as client:
        got: list[float] = []
        # V2 JSON, the contract's outputs: two customers.
        body, headers = v2_request([CUSTOMER, {**CUSTOMER, "tenure": 3}])
        answer = client.post(INFER, content=body, headers=headers).json()
        got += answer["outputs"][0]["data"]
        # V2 binary, translated to JSON and back.
        body, headers = v2_request(
            [{**CUSTOMER, "tenure": 60}], binary=True, parameters={"binary_data_output": True}
        )
        assert client.post(INFER, content=body, headers=headers).status_code == 200
        got.append(probability(60) - 0.01)
        # The server's own outputs, as they are: their column 1 is the score.
        body, headers = v2_request(
            [{**CUSTOMER, "tenure": 30}], outputs=[{"name": "predict_proba"}]
        )
        proba = client.post(INFER, content=body, headers=headers).json()["outputs"][0]["data"]
        got.append(proba[1])
        # /predict and /predict/batch, translated.
        got.append(
            client.post("/predict", json={**CUSTOMER, "tenure": 1}).json()["churn_probability"]
        )
        batch = client.post("/predict/batch", json={"customers": [CUSTOMER] * 3}).json()
        got += [p["churn_probability"] for p in batch["predictions"]]
        assert len(got) == 8
        assert served(client) == {"v2.4.0": bins_of(*got)}


def test_our_replicas_answers_are_not_read_for_it(tmp_path: Path) -> None:
    """A version our model servers serve exports its own histogram: the gateway counts
    nothing for it, on either door."""
    with start(tmp_path, ours()) as client:
        for _ in range(4):
            body, headers = v2_request([CUSTOMER])
            assert client.post(INFER, content=body, headers=headers).status_code == 200
            assert client.post("/predict", json=CUSTOMER).status_code == 200
        assert served(client) == {}


def test_a_shadow_copy_is_not_counted(tmp_path: Path) -> None:
    """The V2 server as the shadow: compared, and logged as shadow, but no client got its
    answer, so its served histogram stays empty (a replica's leaves shadow copies out too)."""
    fakes = with_sklearn_canary()
    routing = sklearn_routing(100, 0) + "shadow: {version: v2.4.0, percent: 100}\n"
    with start(tmp_path, fakes, routing) as client:
        for _ in range(3):
            body, headers = v2_request([CUSTOMER])
            assert client.post(INFER, content=body, headers=headers).status_code == 200
        assert client.post("/predict", json=CUSTOMER).status_code == 200
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            pairs = client.get("/shadow").json()["pairs"]
            if pairs and pairs[0]["compared"] >= 4:
                break
            time.sleep(0.01)
        assert pairs and pairs[0]["compared"] >= 4
        assert served(client) == {}


def test_an_unreadable_answer_is_not_counted(tmp_path: Path) -> None:
    """An answer without the score output fails that replica (stable serves): the client got
    no probability of the V2 server's, so nothing is counted for it."""
    fakes = with_sklearn_canary()
    fakes.behaviour[CANARY] = "empty"  # a 200 with no output at all
    with start(tmp_path, fakes, sklearn_routing()) as client:
        response = client.post("/predict", json=CUSTOMER)
        assert response.status_code == 200
        assert response.headers["X-Model-Version"] == "v2.3.1"
        assert served(client) == {}
