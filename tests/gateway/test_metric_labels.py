"""No client and no replica can create a metric series: every label value is from a closed set."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.app import GatewayApp, create_app
from gateway.metrics import STATUS_LABELS
from tests.gateway.fakes import FakeReplicas, settings_for, write_routing

PAYLOAD = b'{"tenure": 14}'
VERSIONS = {"v2.3.1", "v2.4.0"}


@pytest.fixture
def fakes() -> FakeReplicas:
    return FakeReplicas()


@pytest.fixture
def client(tmp_path: Path, fakes: FakeReplicas) -> Iterator[TestClient]:
    path = write_routing(tmp_path / "routing.yaml")
    with TestClient(create_app(settings_for(path), **fakes.transports())) as test_client:
        yield test_client


def series(client: TestClient) -> list[str]:
    """Every sample line of /metrics (name and labels, without the value)."""
    text = client.get("/metrics").text
    return [line.rpartition(" ")[0] for line in text.splitlines() if not line.startswith("#")]


def label_values(lines: list[str], label: str) -> set[str]:
    return {m[1] for line in lines for m in re.finditer(rf'\b{label}="([^"]*)"', line)}


def forward_many(client: TestClient, headers: list[list[tuple[bytes, bytes]]]) -> list[int]:
    """Each header list through the proxy, in the app's own loop (10,000 in well under 1 s)."""
    app = client.app
    assert isinstance(app, GatewayApp) and app.proxy is not None
    proxy = app.proxy

    async def run() -> list[int]:
        statuses = []
        for request_headers in headers:
            answer = await proxy.forward("/predict", request_headers, PAYLOAD, time.perf_counter())
            statuses.append(answer.status)
        return statuses

    return client.portal.call(run)  # type: ignore[union-attr]


def test_ten_thousand_distinct_bad_pins_add_no_series(client: TestClient) -> None:
    forward_many(client, [[(b"x-model-version", b"junk-first")]])  # the bad_pin series exists
    before = series(client)
    pins = [[(b"x-model-version", f"junk-{i}".encode())] for i in range(10_000)]
    statuses = forward_many(client, pins)
    assert set(statuses) == {400}
    after = series(client)
    assert len(after) == len(before), sorted(set(after) - set(before))[:5]
    assert "junk" not in client.get("/metrics").text
    assert label_values(after, "version") <= VERSIONS | {"none"}


def test_bad_pin_keeps_its_text_in_the_answer_not_in_metrics(client: TestClient) -> None:
    response = client.post("/predict", content=PAYLOAD, headers={"X-Model-Version": "junk-7"})
    assert response.status_code == 400
    assert "junk-7" in response.text  # the client is told what it sent
    assert 'version="none"' in client.get("/metrics").text


def test_a_replica_reporting_an_unknown_version_makes_no_series(
    client: TestClient, fakes: FakeReplicas
) -> None:
    for i in range(50):
        fakes.answer_version = f"made-up-{i}"
        response = client.post("/predict", content=PAYLOAD)
        assert response.status_code == 200
        # Tagged with the version routing.yaml pins the replica to.
        assert response.headers["X-Model-Version"] in VERSIONS
    lines = series(client)
    assert "made-up" not in client.get("/metrics").text
    assert label_values(lines, "version") <= VERSIONS


def test_a_replica_reporting_another_configured_version_is_believed(
    client: TestClient, fakes: FakeReplicas
) -> None:
    fakes.answer_version = "v2.4.0"
    response = client.post("/predict", content=PAYLOAD, headers={"X-Model-Version": "v2.3.1"})
    assert response.headers["X-Model-Version"] == "v2.4.0"


@pytest.mark.parametrize(
    ("status", "label"),
    [(200, "200"), (418, "418"), (422, "422"), (299, "2xx"), (399, "3xx"), (499, "4xx")],
)
def test_status_labels_are_registered_codes_or_a_class(
    client: TestClient, fakes: FakeReplicas, status: int, label: str
) -> None:
    fakes.status = status
    response = client.post("/predict", content=PAYLOAD)
    assert response.status_code == status  # the client still gets the replica's status
    assert label_values(series(client), "status") == {label}


def test_status_labels_are_a_closed_set() -> None:
    values = set(STATUS_LABELS.values())
    assert len(values) < 80  # the registered codes, five classes, "other"
    assert {"1xx", "2xx", "3xx", "4xx", "5xx", "other"} <= values
    assert STATUS_LABELS[999] == "other" and STATUS_LABELS[503] == "503"
