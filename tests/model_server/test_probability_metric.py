"""model_churn_probability: the per-version histogram a rollout judges prediction drift on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from model_server.app import create_app
from model_server.metrics import PROBABILITY_BUCKETS, ProbabilityHistogram
from model_server.settings import ModelSettings
from tests.model_server.test_api import customers


@pytest.fixture(scope="module")
def client(artifacts_dir: Path) -> Iterator[TestClient]:
    settings = ModelSettings(version="v2.4.0", path=artifacts_dir / "v2.4.0" / "model.joblib")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def buckets(client: TestClient, shadow: str) -> dict[str, float]:
    text = client.get("/metrics").text
    for family in text_string_to_metric_families(text):
        if family.name == "model_churn_probability":
            return {
                s.labels["le"]: s.value
                for s in family.samples
                if s.name.endswith("_bucket")
                and s.labels["shadow"] == shadow
                and s.labels["version"] == "v2.4.0"
            }
    return {}


def test_probabilities_binned_by_version_shadow_apart(client: TestClient) -> None:
    batch = customers(40)
    answer = client.post("/predict/batch", json={"customers": batch}).json()
    client.post("/predict/batch", json={"customers": batch[:5]}, headers={"X-Shadow-Of": "r1"})
    seen = buckets(client, "false")
    assert list(seen) == [*(str(b) for b in PROBABILITY_BUCKETS), "+Inf"]
    assert seen["+Inf"] == 40
    below_half = sum(1 for p in answer["predictions"] if p["churn_probability"] <= 0.5)
    assert seen["0.5"] == below_half
    assert buckets(client, "true")["+Inf"] == 5


def test_a_batch_and_single_calls_bin_alike() -> None:
    registry = CollectorRegistry()
    values = [0.0, 0.1, 0.1000001, 0.35, 0.5, 0.9, 1.0, 0.2, 0.2]
    batch = ProbabilityHistogram("v1")
    batch.observe_many(False, np.asarray(values))
    single = ProbabilityHistogram("v1")
    for value in values:
        single.observe(False, [value])
    reference = Histogram("ref", "", buckets=PROBABILITY_BUCKETS, registry=registry)
    for value in values:
        reference.observe(value)

    def samples(family: object) -> list[tuple[str, float]]:
        return [
            (s.name.removeprefix("ref").removeprefix("model_churn_probability"), round(s.value, 9))
            for s in family.samples
            if not s.name.endswith("_created")
        ]

    expected = samples(next(iter(reference.collect())))
    assert samples(next(iter(batch.collect()))) == expected
    assert samples(next(iter(single.collect()))) == expected
